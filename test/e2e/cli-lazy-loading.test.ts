import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { Command } from "commander";
import { COMMAND_GROUPS } from "../../cli/command-groups.ts";
import { connectionUrl } from "../../lib/db/database.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { plumctl } from "../support/plumctl.ts";
import { freePort } from "../support/ports.ts";

const EVERY_COMMAND = [
  "agent",
  "agent-restart",
  "config",
  "database",
  "audit",
  "user",
  "serve",
  "validate",
  "migrate",
  "demo-data",
  "backup",
  "restore",
  "drill",
  "doctor",
  "install",
  "uninstall",
  "liveness-check",
  "wait-ready",
  "support-bundle",
  "status",
  "evidence",
  "release",
  "upgrade",
  "rollback",
];

/** plumctl loads only the command group argv names: a product instance (`plumctl serve`) never loads the agent. */
describe("plumctl loads command groups lazily", function () {
  this.timeout(120_000);
  let dbs: FreshDatabases;
  let dir: string;

  before(async () => {
    dbs = await freshDatabases({ migrated: true });
    dir = tempHome();
  });
  after(async () => {
    await dbs?.drop();
    removeHome(dir);
  });

  it("`plumctl serve` serves /healthz having loaded product/ and lib/, nothing of appliance/, backup/, installer/ or pdfkit", async () => {
    const log = path.join(dir, "modules.log");
    const port = await freePort();
    const child = spawn(
      process.execPath,
      ["--import", path.join(APP_ROOT, "test", "support", "module-recorder.mjs"), path.join(APP_ROOT, "bin", "plumctl.js"), "serve"],
      {
        cwd: APP_ROOT,
        env: {
          ...process.env,
          PLUM_TEST_MODULE_LOG: log,
          PLUM_PRODUCT_DATABASE_URL: connectionUrl(dbs.server, dbs.product),
          PLUM_PRODUCT_SESSION_KEY: randomBytes(32).toString("hex"),
          PLUM_PRODUCT_SETTINGS: JSON.stringify({
            cookieSecure: false,
            sessionHours: 1,
            security: { loginMaxFailures: 5, loginWindowSeconds: 60, lockoutSeconds: 300, loginRateLimitPerMinute: 30 },
          }),
          PLUM_INSTANCE_PORT: String(port),
          PLUM_LOG_LEVEL: "warn",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      await waitFor(
        "the instance's /healthz",
        async () => {
          if (child.exitCode !== null) throw new Error(`plumctl serve exited ${child.exitCode}:\n${output}`);
          const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
          return res?.status === 200 ? true : undefined;
        },
        { timeoutMs: 60_000, maxDelayMs: 250 },
      );
    } finally {
      child.kill("SIGTERM");
      await withDeadline("plumctl serve to exit", 20_000, exited);
    }
    const root = new URL(`file://${APP_ROOT}/`).href;
    const ours = [...new Set(readFileSync(log, "utf8").split("\n").filter(Boolean))];
    const inTree = ours.filter((u) => u.startsWith(root) && !u.includes("/node_modules/")).map((u) => u.slice(root.length));
    expect(inTree.filter((p) => p.startsWith("product/")).length, "the recorder saw the product load").to.be.greaterThan(10);
    expect(inTree).to.include("cli/serve-command.ts");
    expect(inTree.filter((p) => /^(appliance|backup|installer)\//.test(p))).to.deep.equal([]);
    expect(ours.filter((u) => u.includes("/node_modules/pdfkit/"))).to.deep.equal([]);
  });

  it("`plumctl status` with no agent answers having loaded no database driver, web server or agent module", async () => {
    const log = path.join(dir, "status-modules.log");
    const res = spawnSync(
      process.execPath,
      ["--import", path.join(APP_ROOT, "test", "support", "module-recorder.mjs"), path.join(APP_ROOT, "bin", "plumctl.js"), "status", "--json"],
      { cwd: APP_ROOT, env: { ...process.env, PLUM_HOME: dir, PLUM_TEST_MODULE_LOG: log }, encoding: "utf8", timeout: 60_000 },
    );
    expect(res.status, res.stderr).to.equal(1);
    expect((JSON.parse(res.stdout) as { reasons: string[] }).reasons).to.deep.equal(["the agent is not running"]);
    const loaded = [...new Set(readFileSync(log, "utf8").split("\n").filter(Boolean))];
    const root = new URL(`file://${APP_ROOT}/`).href;
    expect(loaded.filter((u) => /\/node_modules\/(sequelize|pg|express|dockerode|pdfkit)\//.test(u))).to.deep.equal([]);
    const inTree = loaded.filter((u) => u.startsWith(root) && !u.includes("/node_modules/")).map((u) => u.slice(root.length));
    expect(inTree).to.include("cli/status-command.ts");
    expect(inTree.filter((p) => /^appliance\/(agent|production|console\/app|status\/status-gatherer)\.ts$/.test(p))).to.deep.equal([]);
  });

  it("`plumctl wait-ready` (the service's start check) loads no database driver, web server or agent module", async () => {
    const log = path.join(dir, "wait-ready-modules.log");
    const res = spawnSync(
      process.execPath,
      ["--import", path.join(APP_ROOT, "test", "support", "module-recorder.mjs"), path.join(APP_ROOT, "bin", "plumctl.js"), "wait-ready", "--timeout", "1"],
      { cwd: APP_ROOT, env: { ...process.env, PLUM_HOME: dir, PLUM_TEST_MODULE_LOG: log }, encoding: "utf8", timeout: 60_000 },
    );
    expect(res.status, res.stderr).to.equal(1);
    expect(res.stderr).to.contain("waiting for the agent to serve").and.to.contain("agent.json");
    const loaded = [...new Set(readFileSync(log, "utf8").split("\n").filter(Boolean))];
    expect(loaded.filter((u) => /\/node_modules\/(sequelize|pg|express|dockerode|pdfkit|argon2|zod)\//.test(u))).to.deep.equal([]);
  });

  it("`plumctl --help` still lists every command", async () => {
    const res = await plumctl(["--help"], {});
    expect(res.code, res.stderr).to.equal(0);
    const listed = [...res.stdout.matchAll(/^ {2}([a-z-]+)(?= )/gm)].map((m) => m[1]);
    expect(listed).to.deep.equal([...EVERY_COMMAND, "help"]);
  });

  it("each group's table entry names exactly the commands its module registers", async () => {
    for (const group of COMMAND_GROUPS) {
      const program = new Command();
      (await group.load()).register(program);
      expect(
        program.commands.map((c) => c.name()),
        group.commands.join(", "),
      ).to.deep.equal(group.commands);
    }
    expect(COMMAND_GROUPS.flatMap((g) => g.commands)).to.deep.equal(EVERY_COMMAND);
  });
});
