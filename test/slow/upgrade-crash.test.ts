import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { QueryTypes, type Sequelize } from "sequelize";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { UpgradeJournal, type Upgrade } from "../../appliance/upgrade/upgrade-journal.ts";
import { plumctl } from "../support/plumctl.ts";
import { addMigration } from "../support/release-patches.ts";
import { RunningAppliance } from "../support/running-appliance.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";

describe("upgrades survive the agent being killed (SIGKILL) before and after promotion", function () {
  this.timeout(600_000);
  let appliance: RunningAppliance;
  let ops: Sequelize;
  let journal: UpgradeJournal;
  let outDir: string;

  before(async () => {
    outDir = mkdtempSync(path.join(tmpdir(), "plum-crash-bundles-"));
    const bundle = await buildTestBundle({
      version: "0.2.0",
      patch: addMigration("1732000000500_release-notes", "create table release_notes (id serial primary key, body text not null)", "drop table release_notes"),
      key: testVendorKeys().privateKey,
      outDir,
    });
    appliance = await RunningAppliance.start({
      env: { PLUM_VENDOR_PUBLIC_KEY: testVendorKeys().publicKeyPem, PLUM_UPGRADE_PROMOTION: "now", PLUM_UPGRADE_SOAK_SECONDS: "6" },
    });
    const imported = await plumctl(["release", "import", bundle], appliance.env, 120_000);
    expect(imported.code, imported.stderr).to.equal(0);
    ops = openSequelize(clientConfig(appliance.dbs.server, appliance.dbs.ops), { poolMax: 2 });
    journal = new UpgradeJournal(ops);
  });
  after(async () => {
    await ops?.close();
    await appliance?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  /** Start an upgrade, and SIGKILL the agent the moment the journal says `step` started. */
  async function killDuring(step: string): Promise<Upgrade> {
    const started = await plumctl(["upgrade", "start", "0.2.0", "--now", "--no-follow"], appliance.env);
    expect(started.code, started.stderr).to.equal(0);
    const u = (await journal.latest())!;
    await waitFor(
      `upgrade ${u.id} to start ${step}`,
      async () => ((await journal.entries(u.id)).some((e) => e.step === step && e.phase === "started") ? true : undefined),
      { timeoutMs: 240_000, firstDelayMs: 20, maxDelayMs: 50 },
    );
    process.kill(appliance.agent.agentPid(), "SIGKILL");
    expect((await withDeadline(`the agent to die during ${step}`, 30_000, appliance.agent.exited)).signal).to.equal("SIGKILL");
    const killed = (await journal.get(u.id))!;
    expect(killed.step).to.equal(step);
    expect(killed.finishedAt).to.equal(null);
    return killed;
  }

  async function restartAndSettle(id: number): Promise<Upgrade> {
    await appliance.startAgent();
    return waitFor(
      `upgrade ${id} to settle after the restart`,
      async () => {
        const u = await journal.get(id);
        return u?.finishedAt ? u : undefined;
      },
      { timeoutMs: 240_000, maxDelayMs: 500 },
    );
  }

  async function expectAtRest(version: string, schemaName: string): Promise<void> {
    expect((await appliance.served()).version).to.equal(version);
    expect(await appliance.schema()).to.equal(schemaName);
    expect(appliance.productionInstances()).to.deep.equal([`production@${version}`]);
    expect(await appliance.stagingExists()).to.equal(false);
    expect((await journal.verify()).ok, "the upgrade journal's chain").to.equal(true);
    expect((await new AuditLog(ops).verify()).ok, "the audit chain").to.equal(true);
  }

  it("killed during stage: the restarted agent undoes the upgrade, production untouched", async () => {
    const killed = await killDuring("stage");
    const after = await restartAndSettle(killed.id);
    expect(after.status, after.error ?? "").to.equal("aborted");
    expect(after.error).to.include("interrupted by an agent restart during stage");
    await expectAtRest("0.1.0", "1732000000200_payouts");
  });

  it("killed during the soak: the restarted agent resumes it to completion; the staging restore is evidence", async () => {
    const killed = await killDuring("soak");
    const after = await restartAndSettle(killed.id);
    expect(after.status, after.error ?? "").to.equal("completed");
    await expectAtRest("0.2.0", "1732000000500_release-notes");

    // The staging copy proved the pre-upgrade set restores: a verified restore in the evidence log.
    const [row] = await ops.query<{
      outcome: string;
      set_id: string;
      detail: { purpose: string; note: string; verified: boolean; checks: Array<{ passed: boolean }> };
    }>("select outcome, set_id, detail from backup_evidence where kind = 'restore' and set_id = :setId order by id desc limit 1", {
      replacements: { setId: after.snapshotSetId },
      type: QueryTypes.SELECT,
    });
    expect(row).to.include({ outcome: "success", set_id: after.snapshotSetId });
    expect(row.detail).to.include({ purpose: "staging", note: "restored for staging, verified", verified: true });
    expect(row.detail.checks.length).to.be.greaterThan(0);
    expect(row.detail.checks.every((c) => c.passed)).to.equal(true);

    const back = await plumctl(["rollback", "--to", "0.1.0"], appliance.env, 240_000);
    expect(back.code, back.stdout + back.stderr).to.equal(0);
    expect((await appliance.served()).version).to.equal("0.1.0");
  });
});
