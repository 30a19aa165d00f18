import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { ConfigError, keysFromEnvironment, loadConfig } from "../../lib/config.ts";
import { effectiveConfigYaml } from "../../lib/effective-config.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";

const run = promisify(execFile);

describe("configuration (plum.yaml + environment)", () => {
  let home: string;
  beforeEach(() => (home = tempHome()));
  afterEach(() => removeHome(home));

  it("gives every key its default when plum.yaml is absent", () => {
    const config = loadConfig({ PLUM_HOME: home });
    expect(config.http).to.deep.equal({ host: "0.0.0.0", port: 8080, cookieSecure: true, trustedProxies: [] });
    expect(config.console.trustedProxies).to.deep.equal([]);
    expect(config.imports.maxRows).to.equal(100_000);
    expect(config.console.port).to.equal(8800);
    expect(config.console.host).to.equal("127.0.0.1");
    expect(config.database.url).to.equal(undefined);
    expect(config.database.embedded.port).to.equal(5433);
    expect(config.home).to.equal(home);
  });

  it("lets environment variables override plum.yaml", () => {
    writeFileSync(path.join(home, "plum.yaml"), "http:\n  port: 9000\nconsole:\n  port: 9001\n");
    const config = loadConfig({ PLUM_HOME: home, PLUM_HTTP_PORT: "9100", PLUM_DATABASE_URL: "postgres://u:p@db.internal:5432/postgres" });
    expect(config.http.port).to.equal(9100);
    expect(config.console.port).to.equal(9001);
    expect(config.database.url).to.equal("postgres://u:p@db.internal:5432/postgres");
  });

  it("writes the configuration in effect as a plum.yaml another host loads the same, env values marked, the password masked", () => {
    writeFileSync(path.join(home, "plum.yaml"), "http:\n  port: 9000\nbackup:\n  rpoHours: 3\n");
    const env = {
      PLUM_HOME: home,
      PLUM_HTTP_PORT: "9100",
      PLUM_DATABASE_URL: "postgres://u:s3cret@db.internal:5432/postgres",
      PLUM_BACKUP_SECONDARY: "/mnt/b",
    };
    const config = loadConfig(env);
    expect(keysFromEnvironment(config)).to.deep.equal({
      "http.port": "PLUM_HTTP_PORT",
      "database.url": "PLUM_DATABASE_URL",
      "backup.secondary": "PLUM_BACKUP_SECONDARY",
    });
    const yaml = effectiveConfigYaml(config, ["Backup set S."]);
    expect(yaml).to.match(/^# Backup set S\.\n/);
    expect(yaml)
      .to.contain("port: 9100 # from PLUM_HTTP_PORT")
      .and.contain("secondary: /mnt/b # from PLUM_BACKUP_SECONDARY")
      .and.contain(`PLUM_HOME was ${home}.`);
    expect(yaml).to.contain("url: postgres://u:REDACTED@db.internal:5432/postgres # from PLUM_DATABASE_URL").and.not.contain("s3cret");

    const other = tempHome();
    try {
      writeFileSync(path.join(other, "plum.yaml"), yaml);
      const again = loadConfig({ PLUM_HOME: other });
      expect(keysFromEnvironment(again)).to.deep.equal({});
      expect({ ...again, home, configFile: config.configFile }).to.deep.equal({
        ...config,
        database: { ...config.database, url: "postgres://u:REDACTED@db.internal:5432/postgres" },
      });
    } finally {
      removeHome(other);
    }
  });

  it("lists every bad key with how to fix it", () => {
    writeFileSync(path.join(home, "plum.yaml"), "http:\n  port: eighty\nconsole:\n  port: 70000\nlog:\n  level: loud\ndatbase: {}\n");
    let error: ConfigError | undefined;
    try {
      loadConfig({ PLUM_HOME: home });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect(error!.problems).to.have.length(4);
    expect(error!.message).to.include("http.port: ").and.include("must be a TCP port from 1 to 65535");
    expect(error!.message).to.include("console.port: ");
    expect(error!.message).to.include("log.level: ").and.include("one of fatal, error, warn, info, debug, trace");
    expect(error!.message).to.include("datbase: unknown key; remove it or check its spelling");
  });

  it("names the environment variable a bad value came from", () => {
    expect(() => loadConfig({ PLUM_HOME: home, PLUM_CONSOLE_PORT: "abc" })).to.throw(ConfigError, /console\.port \(from PLUM_CONSOLE_PORT\)/);
  });

  it("refuses a YAML syntax error with its position", () => {
    writeFileSync(path.join(home, "plum.yaml"), "http:\n  port: [8080\n");
    expect(() => loadConfig({ PLUM_HOME: home })).to.throw(ConfigError, /YAML syntax/);
  });

  it("`plumctl config check` prints each bad key with a hint and exits non-zero", async () => {
    writeFileSync(path.join(home, "plum.yaml"), "http:\n  port: -1\ndatabase:\n  url: mysql://nope\n");
    const result = await run(process.execPath, [path.join(APP_ROOT, "bin", "plumctl.js"), "config", "check"], {
      env: { ...process.env, PLUM_HOME: home },
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("invalid configuration (2 problems)");
    expect(result.stderr).to.include("http.port: ");
    expect(result.stderr).to.include("database.url: ");
    expect(result.stderr).to.include("for the client's own PostgreSQL 15 or newer");
    expect(result.stderr).to.include("hint: fix the keys above");
  });
});
