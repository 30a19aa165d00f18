import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { agentLink, callAgent } from "../../appliance/control/control-client.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { plumctl } from "../support/plumctl.ts";
import { RunningAppliance } from "../support/running-appliance.ts";

interface Job {
  status: string;
  label: string;
  result?: { id?: string; status?: string; passed?: boolean; rtoSeconds?: number };
}

/** The backup agent through `plumctl` and a real agent: sets, copy, drill, restore over production, recovery kit. */
describe("backups through the agent (plumctl → control API → restic, pg_dump, pg_restore)", function () {
  this.timeout(300_000);
  let appliance: RunningAppliance;
  let home: string;
  let env: Record<string, string>;

  before(async () => {
    appliance = await RunningAppliance.start({ env: (home) => ({ PLUM_BACKUP_SECONDARY: path.join(home, "site-b") }), demoParticipants: 300 });
    ({ home, env } = appliance);
    writeFileSync(path.join(home, "files", "logo.svg"), "<svg/>");
  });
  after(() => appliance?.stop());

  const run = async (args: string[]) => {
    const res = await plumctl([...args, "--json"], env, 240_000);
    expect(res.code, `${args.join(" ")}: ${res.stdout}\n${res.stderr}`).to.equal(0);
    return JSON.parse(res.stdout) as Job;
  };
  const participants = () => appliance.count("select count(*) as n from participants");

  let setId: string;

  it("takes a set through the running agent, copies it to the second site, and lists it", async () => {
    const job = await run(["backup", "run"]);
    expect(job.status).to.equal("succeeded");
    setId = job.result!.id!;
    const list = await plumctl(["backup", "list", "--json"], env);
    const sets = JSON.parse(list.stdout) as Array<{
      id: string;
      status: string;
      copiedAt: string | null;
      primarySnapshots: Record<string, string>;
      secondarySnapshots: Record<string, string> | null;
    }>;
    const set = sets.find((s) => s.id === setId)!;
    expect(set.status).to.equal("succeeded");
    expect(Object.keys(set.primarySnapshots).sort()).to.deep.equal(["db-ops", "db-plum", "files"]);
    expect(set.copiedAt, "copied to the secondary").to.be.a("string");
    expect(Object.keys(set.secondarySnapshots ?? {}).sort()).to.deep.equal(["db-ops", "db-plum", "files"]);
    const audit = await plumctl(["audit", "verify", "--json"], env);
    expect(JSON.parse(audit.stdout).ok).to.equal(true);
    // The agent's jobs, for when plumctl lost its connection to one that still runs.
    const jobs = await plumctl(["backup", "jobs"], env);
    expect(jobs.code, jobs.stderr).to.equal(0);
    expect(jobs.stdout).to.match(/^backup-\S+ {2}succeeded {2}\S+ {2}cli {2}manual backup set$/m);
  });

  it("runs a drill that restores into scratch, verifies and records a measured RTO", async () => {
    const job = await run(["drill", "run"]);
    expect(job.status).to.equal("succeeded");
    expect(job.result!.passed).to.equal(true);
    expect(job.result!.rtoSeconds).to.be.a("number").and.greaterThan(0);
    const list = await plumctl(["drill", "list"], env);
    expect(list.stdout).to.match(/passed {2}set \S+ {2}RTO [\d.]+ s/);
  });

  it("restores over production: the instance is restarted on the restored data and serves again", async () => {
    const before = await participants();
    await appliance.query("delete from product_sessions");
    await appliance.query("update participants set name = 'DAMAGED' where id in (select id from participants limit 10)");
    const refused = await plumctl(["restore", setId], env);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include("hint: confirm with: plumctl restore");
    const job = await run(["restore", setId, "--yes"]);
    expect(job.status, JSON.stringify(job)).to.equal("succeeded");
    await appliance.reconnectProduct();
    expect(await participants()).to.equal(before);
    expect(await appliance.count("select count(*) as n from participants where name = 'DAMAGED'")).to.equal(0);
    expect((await fetch(`${appliance.agent.proxyUrl}/readyz`)).status).to.equal(200);
    expect(readFileSync(path.join(home, "files", "logo.svg"), "utf8")).to.equal("<svg/>");
    const list = JSON.parse((await plumctl(["backup", "list", "--json"], env)).stdout) as Array<{ kind: string }>;
    expect(list.map((s) => s.kind)).to.include("pre-restore");
    // Audited as it happened: asked for when the agent took the job, succeeded only once it had ended.
    const ops = openSequelize(clientConfig(appliance.dbs.server, appliance.dbs.ops), { poolMax: 1 });
    const audit = await new AuditLog(ops).list({ action: "backup.restore" }).finally(() => ops.close());
    expect(audit.map((r) => [r.actor, r.action, r.outcome])).to.deep.equal([
      ["cli", "backup.restore.succeeded", "success"],
      ["cli", "backup.restore.requested", "success"],
    ]);
    expect((audit[0].detail.result as { restoreId?: unknown }).restoreId).to.be.a("number");
  });

  it("refuses `backup run --kind bogus` beside the running agent, as the agent's control API does", async () => {
    const res = await plumctl(["backup", "run", "--kind", "bogus"], env);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.match(/^error: --kind bogus is not valid: use one of manual, scheduled, pre-upgrade$/m);
    // The agent's own answer, over its control socket with the host's token, as plumctl asks.
    const direct = await callAgent(agentLink(home)!, "POST", "/jobs", { kind: "backup", setKind: "bogus" }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(direct?.message).to.match(/^setKind: .*"manual"\|"scheduled"\|"pre-upgrade"/);
  });

  it("prints the recovery kit on demand (the password, the repositories, the commands) and audits it", async () => {
    const kit = await plumctl(["backup", "recovery-kit"], env);
    expect(kit.code, kit.stderr).to.equal(0);
    const password = readFileSync(path.join(home, "secrets", "restic-password"), "utf8").trim();
    expect(kit.stdout).to.include(password).and.include("repository id: ").and.include("restic dump --tag 'set:<set id>,part:db-plum' latest /plum.dump");
    const verify = await plumctl(["audit", "verify", "--json"], env);
    expect(JSON.parse(verify.stdout).ok).to.equal(true);
    expect(existsSync(path.join(home, "run", "agent.json"))).to.equal(true);
  });
});
