import { writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import semver from "semver";
import { APP_VERSION } from "../../lib/version.ts";
import { waitFor } from "../../lib/wait.ts";
import { removeHome, startAgentProcess, tempHome, type AgentProcess } from "../support/agent-process.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { opsRows } from "../support/ops-rows.ts";
import { plumctl } from "../support/plumctl.ts";
import { freePort } from "../support/ports.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";

/**
 * A running agent and an edited plum.yaml: `plumctl doctor` passes on the agent's own ports, a release import
 * goes through the agent (its pinned key, not the CLI's reading of the file), and `plumctl config reload` or
 * SIGHUP applies the live keys and lists those that need a restart.
 */
describe("a running appliance and its plum.yaml (doctor, release import through the agent, config reload, SIGHUP)", function () {
  this.timeout(300_000);
  const version = semver.inc(APP_VERSION, "minor")!;
  let home: string;
  let dbs: FreshDatabases;
  let agent: AgentProcess;
  let env: Record<string, string>;
  let bundle: string;
  let ports: { http: number; console: number };

  // Ports come from plum.yaml here (an empty variable is no override), so that editing them is seen.
  const yaml = (extra: { http?: number; console?: number; key?: string; soak?: number; raw?: string } = {}) =>
    [
      `http:\n  host: 127.0.0.1\n  port: ${extra.http ?? ports.http}`,
      `console:\n  port: ${extra.console ?? ports.console}\n  cookieSecure: false`,
      extra.key ? `releases:\n  vendorPublicKey: |\n${extra.key.trimEnd().replace(/^/gm, "    ")}` : "",
      extra.soak !== undefined ? `upgrades:\n  soakSeconds: ${extra.soak}` : "",
      extra.raw ?? "",
    ].join("\n") + "\n";
  const writeYaml = (text: string) => writeFileSync(path.join(home, "plum.yaml"), text);

  before(async () => {
    home = tempHome();
    dbs = await freshDatabases();
    ports = { http: await freePort(), console: await freePort() };
    writeYaml(yaml());
    const noPortOverrides = { PLUM_HTTP_PORT: "", PLUM_CONSOLE_PORT: "", PLUM_HTTP_HOST: "", PLUM_VENDOR_PUBLIC_KEY: "" };
    env = { ...dbs.env, ...noPortOverrides, PLUM_HOME: home };
    [agent, bundle] = await Promise.all([
      startAgentProcess({ home, env: { ...dbs.env, ...noPortOverrides } }),
      buildTestBundle({ version, key: testVendorKeys().keyFile, outDir: path.join(home, "incoming") }),
    ]);
  });
  after(async () => {
    await agent?.stop("SIGTERM");
    await dbs?.drop();
    removeHome(home);
  });

  const importAudits = () =>
    opsRows<{ actor: string; target: string; outcome: string }>(
      dbs,
      "select actor, target, outcome from audit_log where action = 'release.import' order by id",
    );

  it("`plumctl doctor` passes: the ports in use are held by this appliance's agent", async () => {
    const res = await plumctl(["doctor"], env, 60_000);
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    const pid = agent.agentPid();
    expect(res.stdout).to.include(`127.0.0.1:${ports.http} in use by this appliance's agent (pid ${pid})`);
    expect(res.stdout).to.include(`127.0.0.1:${ports.console} in use by this appliance's agent (pid ${pid})`);
    expect(res.stdout).not.to.include("FAIL");
  });

  it("a key pinned in plum.yaml but not reloaded: the import goes through the agent, which refuses it", async () => {
    writeYaml(yaml({ key: testVendorKeys().publicKeyPem }));
    const res = await plumctl(["release", "import", bundle], env, 120_000);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include("release bundle refused by the key check: no vendor public key is configured");
    expect(await importAudits()).to.deep.equal([{ actor: "cli", target: path.basename(bundle), outcome: "failure" }]);
  });

  it("`plumctl config reload` applies the pinned key, reports a changed port as needing a restart; then the import succeeds", async () => {
    const movedPort = await freePort();
    writeYaml(yaml({ key: testVendorKeys().publicKeyPem, http: movedPort }));
    const reload = await plumctl(["config", "reload", "--json"], env);
    expect(reload.code, reload.stderr).to.equal(0);
    expect(JSON.parse(reload.stdout)).to.deep.equal({ applied: ["releases.vendorPublicKey"], restartNeeded: ["http.port"] });
    expect((await fetch(`${agent.proxyUrl}/healthz`)).status, "the proxy still serves on its port").to.equal(200);
    expect(agent.proxyUrl).to.equal(`http://127.0.0.1:${ports.http}`);
    expect(await fetch(`http://127.0.0.1:${movedPort}/healthz`).catch(() => "refused")).to.equal("refused");

    const res = await plumctl(["release", "import", bundle], env, 120_000);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.include(`imported release ${version}`);
    expect((await importAudits()).map((r) => [r.actor, r.outcome])).to.deep.equal([
      ["cli", "failure"],
      ["cli", "success"],
    ]);
    const list = await plumctl(["release", "list", "--json"], env);
    expect((JSON.parse(list.stdout) as Array<{ version: string }>).map((r) => r.version)).to.deep.equal([version, APP_VERSION]);
  });

  it("SIGHUP to the agent does the same: live keys applied, port changes listed as needing a restart", async () => {
    const movedPort = await freePort();
    writeYaml(yaml({ key: testVendorKeys().publicKeyPem, http: movedPort, console: await freePort(), soak: 7 }));
    process.kill(agent.agentPid(), "SIGHUP");
    const line = await waitFor(
      "the agent's answer to SIGHUP",
      async () => {
        const out = agent.output();
        const at = out.indexOf("SIGHUP:");
        return at >= 0 && out.slice(at).includes("http.port:") ? out.slice(at) : undefined;
      },
      { timeoutMs: 30_000, maxDelayMs: 200 },
    );
    expect(line).to.include("configuration reloaded: applied upgrades.soakSeconds");
    expect(line).to.match(/needs a restart of the agent to take effect \(unchanged until then\): console\.port, http\.port/);
    // Applied once: a reload of the same file finds nothing new to apply, and the port changes still waiting.
    const again = await plumctl(["config", "reload", "--json"], env);
    expect(again.code, again.stderr).to.equal(0);
    expect(JSON.parse(again.stdout)).to.deep.equal({ applied: [], restartNeeded: ["console.port", "http.port"] });
  });

  it("an invalid plum.yaml changes nothing and says why", async () => {
    writeYaml(yaml({ key: testVendorKeys().publicKeyPem, soak: 9, raw: "instances:\n  stopTimeoutSeconds: soon" }));
    const res = await plumctl(["config", "reload"], env);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include("invalid configuration").and.include("instances.stopTimeoutSeconds");
    writeYaml(yaml({ key: testVendorKeys().publicKeyPem, soak: 7 }));
    const back = await plumctl(["config", "reload", "--json"], env);
    expect(JSON.parse(back.stdout), "soakSeconds 9 was never applied").to.deep.equal({ applied: [], restartNeeded: [] });
  });
});
