import path from "node:path";
import { expect } from "chai";
import type { StatusReport } from "../../appliance/status/status-report.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { opsRows } from "../support/ops-rows.ts";
import { plumctl } from "../support/plumctl.ts";
import { RunningAppliance } from "../support/running-appliance.ts";

/**
 * `plumctl status` against one real agent with a secondary repository: after a real backup set (copied off
 * site) the facts are the agent's and the catalogue's; with the agent stopped it still answers, at once, and
 * exits 1 saying so.
 */
describe("plumctl status (a running appliance, then a stopped one)", function () {
  this.timeout(180_000);
  let appliance: RunningAppliance;
  let setId: string;

  before(async () => {
    appliance = await RunningAppliance.start({ env: (home) => ({ PLUM_BACKUP_SECONDARY: path.join(home, "second-site") }) });
    const backup = await plumctl(["backup", "run", "--json"], appliance.env, 120_000);
    expect(backup.code, backup.stderr).to.equal(0);
    [{ id: setId }] = await opsRows<{ id: string }>(appliance.dbs, "select id from backup_sets where status = 'succeeded'");
  });
  after(() => appliance?.stop());

  it("--json: the agent's facts, the set just taken within the RPO and copied off site, each control, and exit 1 for the controls that fail", async () => {
    const res = await plumctl(["status", "--json"], appliance.env, 30_000);
    expect(res.code, res.stderr).to.equal(1);
    const r = JSON.parse(res.stdout) as StatusReport;
    expect(Object.keys(r)).to.deep.equal(["verdict", "reasons", "checkedAt", "agent", "production", "proxy", "database", "backup", "disk", "upgrade"]);
    expect(r.verdict).to.equal("degraded");
    // No check has run, no drill, and the repositories are written directly: exactly those, nothing else.
    expect(r.reasons.map((x) => x.split(":")[0])).to.deep.equal([
      "control integrity-check fails",
      "control restore-drill fails",
      "control append-only-storage fails",
    ]);
    expect(r.agent).to.deep.equal({
      running: true,
      answering: true,
      version: APP_VERSION,
      pid: appliance.agent.agentPid(),
      startedAt: r.agent.startedAt,
      pidFile: path.join(appliance.home, "run", "agent.pid"),
      hint: null,
    });
    expect(r.production).to.include({ version: APP_VERSION, healthy: true, live: true, ready: true });
    expect(r.proxy).to.deep.equal({ listening: appliance.agent.proxyUrl, instance: r.production!.instance, version: APP_VERSION });
    expect(r.database).to.include({ mode: "external", host: appliance.dbs.server.host, port: appliance.dbs.server.port, reachable: true, detail: null });
    expect(r.database!.serverVersion).to.match(/^15\./);

    const b = r.backup!;
    expect(b.lastSet).to.include({ id: setId, kind: "manual" });
    expect(b.lastSet!.ageSeconds).to.be.within(0, 60);
    expect(b).to.include({ rpoHours: 6, withinRpo: true });
    expect(b.offsite).to.include({ configured: true, maxAgeHours: 24, ok: true });
    expect(b.offsite.dataAgeSeconds).to.be.within(0, 60);
    expect(b.drill).to.deep.equal({ maxAgeDays: 8, rtoTargetSeconds: 3600, at: null, rtoSeconds: null, ok: false });
    expect(Object.fromEntries(b.controls.map((c) => [c.id, c.result]))).to.deep.equal({
      "backup-rpo": "pass",
      retention: "pass",
      "offsite-copy": "pass",
      "integrity-check": "fail",
      "restore-drill": "fail",
      encryption: "pass",
      "append-only-storage": "fail",
    });
    expect(r.disk.map((d) => [d.what, d.path])).to.deep.equal([
      ["home", appliance.home],
      ["primary repository", path.join(appliance.home, "backups", "primary")],
    ]);
    for (const d of r.disk) expect(d.freeBytes).to.be.greaterThan(0).and.at.most(d.totalBytes);
    expect(r.upgrade).to.equal(null);
  });

  it("prints the verdict first, then one aligned line per part", async () => {
    const res = await plumctl(["status"], appliance.env, 30_000);
    expect(res.code, res.stderr).to.equal(1);
    const lines = res.stdout.trimEnd().split("\n");
    expect(lines[0]).to.equal(
      `Plum appliance ${APP_VERSION}: degraded: control integrity-check fails; control restore-drill fails; control append-only-storage fails`,
    );
    expect(lines.slice(1, 4).map((l) => l.slice(0, l.indexOf(": ")))).to.deep.equal([
      "  - control integrity-check fails",
      "  - control restore-drill fails",
      "  - control append-only-storage fails",
    ]);
    expect(lines.slice(4).map((l) => /^ {2}(\S.*?) {2,}/.exec(l)?.[1])).to.deep.equal([
      "agent",
      "production",
      "edge proxy",
      "database",
      "last backup",
      "off-site copy",
      "restore drill",
      "controls",
      "disk (home)",
      "disk (primary repository)",
      "upgrade",
    ]);
    expect(res.stdout).to.match(new RegExp(`last backup +${setId} \\(manual\\) at \\S+, \\d+ s ago; RPO 6 h: ok`));
    expect(res.stdout).to.match(/controls +4 pass, 3 fail: integrity-check, restore-drill, append-only-storage/);
  });

  it("with the agent stopped: answers at once from what the host shows, and exits 1 saying the agent is not running", async () => {
    await appliance.agent.stop("SIGTERM");
    const started = Date.now();
    const res = await plumctl(["status", "--json"], appliance.env, 30_000);
    expect(Date.now() - started, "no wait on an agent that is gone").to.be.below(5000);
    expect(res.code, res.stderr).to.equal(1);
    const r = JSON.parse(res.stdout) as StatusReport;
    expect(r.verdict).to.equal("degraded");
    expect(r.reasons).to.deep.equal(["the agent is not running"]);
    expect(r.agent).to.include({ running: false, answering: false, version: null, pid: null, pidFile: path.join(appliance.home, "run", "agent.pid") });
    expect(r.agent.hint).to.include("npm start");
    expect([r.production, r.proxy, r.database, r.backup, r.upgrade]).to.deep.equal([null, null, null, null, null]);
    expect(r.disk.map((d) => d.what)).to.deep.equal(["home", "primary repository"]);

    const text = await plumctl(["status"], appliance.env, 30_000);
    expect(text.code).to.equal(1);
    expect(text.stdout.split("\n")[0]).to.equal(`Plum appliance ${APP_VERSION}: degraded: the agent is not running`);
    expect(text.stdout).to.match(/agent +not running; start it: `npm start`/);
  });
});
