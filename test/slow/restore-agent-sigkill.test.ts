import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import type { Sequelize } from "sequelize";
import { RestoreJournal } from "../../backup/restore/restore-journal.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { withDeadline } from "../../lib/wait.ts";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { backendsGone, CrashPoints } from "../support/crash-points.ts";
import { plumctl } from "../support/plumctl.ts";
import { databaseNames } from "../support/restore-fixtures.ts";
import { RunningAppliance } from "../support/running-appliance.ts";

/**
 * The agent SIGKILLed in the swap window of a restore over production (the product stopped, `plum` already
 * the restored copy, the old data parked, the files not yet swapped), then started again: it serves the data
 * production had, never an empty database, with nothing left beside it and every record honest.
 */
describe("a restore over production survives the agent being SIGKILLed in its swap window", function () {
  this.timeout(600_000);
  let appliance: RunningAppliance;
  let ops: Sequelize;
  let points: CrashPoints | undefined;

  before(async () => {
    appliance = await RunningAppliance.start({ demoParticipants: 120 });
    ops = openSequelize(clientConfig(appliance.dbs.server, appliance.dbs.ops), { poolMax: 2 });
  });
  after(async () => {
    await points?.close();
    await ops?.close();
    await appliance?.stop();
  });

  it("restarts on the old data and files, /readyz 200, the restore recorded as undone, the audit chain intact", async () => {
    const { env, home } = appliance;
    const product = appliance.dbs.product;
    writeFileSync(path.join(home, "files", "terms.txt"), "as in the set\n");
    const backup = await plumctl(["backup", "run", "--json"], env, 240_000);
    expect(backup.code, backup.stderr).to.equal(0);
    const setId = (JSON.parse(backup.stdout) as { result: { id: string } }).result.id;
    const changed = () => appliance.count("select count(*) as n from participants where name = 'written after the set'");
    const participants = () => appliance.count("select count(*) as n from participants");
    const count = await participants();
    // Production moves on after the set: what a restore would take away, and what must still be there after the crash.
    await appliance.query("update participants set name = 'written after the set' where id in (select id from participants order by id limit 7)");
    writeFileSync(path.join(home, "files", "terms.txt"), "written after the set\n");
    expect(await changed()).to.equal(7);

    points = await CrashPoints.install(appliance.dbs.server, appliance.dbs.ops);
    await points.pauseAt("journal:keep-files:started");
    const restoring = plumctl(["restore", setId, "--yes"], env, 300_000);
    await points.paused(restoring, () => "plumctl restore ended first");

    // The swap window: the product is stopped, `plum` is already the restored copy and the old data is parked.
    await appliance.reconnectProduct();
    expect(await changed()).to.equal(0);
    expect(await participants()).to.equal(count);
    expect(await databaseNames(appliance.dbs.server, `${product}\\_before\\_restore\\_%`)).to.have.length(1);
    expect((await fetch(`${appliance.agent.proxyUrl}/readyz`)).status).to.equal(503);

    process.kill(appliance.agent.agentPid(), "SIGKILL");
    expect((await withDeadline("the agent to die", 30_000, appliance.agent.exited)).signal).to.equal("SIGKILL");
    await points.abortPausedWrite();
    await points.close();
    points = undefined;
    expect((await restoring).code, "plumctl saw the agent go away").to.not.equal(0);
    await backendsGone(appliance.dbs.server, appliance.dbs.ops);

    await appliance.startAgent();

    expect((await fetch(`${appliance.agent.proxyUrl}/readyz`)).status).to.equal(200);
    await appliance.reconnectProduct();
    expect(await participants()).to.equal(count);
    expect(await changed()).to.equal(7);
    expect(readFileSync(path.join(home, "files", "terms.txt"), "utf8")).to.equal("written after the set\n");
    expect(await databaseNames(appliance.dbs.server, `${product}\\_%`)).to.deep.equal([]);
    expect(readdirSync(home).filter((name) => name.startsWith("files."))).to.deep.equal([]);

    const [restore] = await new RestoreJournal(ops).history(1);
    expect(restore).to.include({ kind: "production", setId, status: "failed", requestedBy: "cli" });
    expect(restore.error).to.equal("interrupted after swap-database and undone by agent start: production has the data it had before the restore");
    expect((await new RestoreJournal(ops).verify()).ok, "the restore journal's chain").to.equal(true);

    const audit = new AuditLog(ops);
    expect((await audit.verify()).ok, "the audit chain").to.equal(true);
    const rows = (await audit.list({ action: "backup.restore", limit: 10 })).reverse();
    expect(rows.map((r) => [r.actor, r.action, r.outcome])).to.deep.equal([
      ["cli", "backup.restore.requested", "success"],
      ["agent", "backup.restore.failed", "failure"],
    ]);
    expect(rows[1].detail).to.include({ restoreId: restore.id, setId, recovery: "undone", interruptedAt: "after swap-database" });
    const [start] = await audit.list({ action: "agent.start", limit: 1 });
    expect(start.detail.recovered).to.include(`restore ${restore.id} of set ${setId} interrupted after swap-database: undone`);
    const verify = await plumctl(["audit", "verify", "--json"], env);
    expect(JSON.parse(verify.stdout).ok).to.equal(true);
  });
});
