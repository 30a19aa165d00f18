import { rmSync } from "node:fs";
import { expect } from "chai";
import { waitFor } from "../../lib/wait.ts";
import { plumctl } from "../support/plumctl.ts";
import { compose, requiredVoucherChannel, unhealthyInProductionAfter, V2_MIGRATION } from "../support/release-patches.ts";
import { runTempDir } from "../support/run-dir.ts";
import { RunningAppliance } from "../support/running-appliance.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";

/**
 * The rollback that only the pre-upgrade snapshot can do, end to end: a release whose migration is
 * irreversible and which turns unhealthy once promoted. Its own appliance, so it runs beside upgrade.test.ts.
 */
describe("upgrades: a rollback that needs the pre-upgrade snapshot", function () {
  this.timeout(600_000);
  let appliance: RunningAppliance;
  let bundle: string;
  let outDir: string;

  before(async () => {
    outDir = runTempDir("plum-upgrade-bundles-");
    bundle = await buildTestBundle({
      version: "0.4.0",
      patch: compose(V2_MIGRATION, requiredVoucherChannel, unhealthyInProductionAfter(1500)),
      key: testVendorKeys().privateKey,
      outDir,
    });
    appliance = await RunningAppliance.forUpgrades(testVendorKeys().publicKeyPem);
  });
  after(async () => {
    await appliance?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  it("a rollback that needs the snapshot shows the write window and waits for an admin, then restores it", async () => {
    expect((await plumctl(["release", "import", bundle], appliance.env, 120_000)).code).to.equal(0);
    const beforeSnapshot = await appliance.count("select count(*) as n from programmes");
    const res = await plumctl(["upgrade", "start", "0.4.0", "--now"], appliance.env, 300_000);
    expect(res.code, res.stdout + res.stderr).to.equal(0); // settles in restore-pending, which is not a failure yet
    let s = await appliance.upgradeStatus();
    expect(s.latest.status, s.latest.error ?? "").to.equal("restore-pending");
    expect(s.latest.rollbackMode).to.equal("restore-required");
    expect(s.latest.report.rollbackMode.why).to.match(/smoke suite failed on the new schema .*down migrations failed/);
    expect(s.latest.report.rollback.writeWindow.from).to.be.a("string");
    expect(res.stdout).to.match(/losing writes from \S+ to \S+: `plumctl upgrade confirm-restore`/);
    expect((await appliance.served()).version, "traffic went back to the old release first").to.equal("0.1.0");
    await appliance.query("insert into programmes (name, kind) values ('after the snapshot', 'recognition')");
    const confirmed = await plumctl(["upgrade", "confirm-restore"], appliance.env);
    expect(confirmed.code, confirmed.stderr).to.equal(0);
    s = await waitFor("the restore to finish", appliance.upgradeSettled(["rolled-back", "failed"]), { timeoutMs: 240_000, maxDelayMs: 500 });
    expect(s.latest.status, s.latest.error ?? "").to.equal("rolled-back");
    expect(s.latest.report.rollback.restoreConfirmedBy).to.equal("cli");
    await appliance.reconnectProduct(); // the restore swapped the database
    expect(await appliance.schema()).to.equal("1732000000200_payouts");
    expect(await appliance.count("select count(*) as n from programmes")).to.equal(beforeSnapshot);
    expect(await appliance.count("select count(*) as n from programmes where name = 'after the snapshot'"), "the write window is lost, as shown").to.equal(0);
    expect((await appliance.served()).version).to.equal("0.1.0");
    expect(appliance.productionInstances()).to.deep.equal(["production@0.1.0"]);
  });

  it("the audit log and the upgrade journal verify", async () => {
    const audit = await plumctl(["audit", "verify", "--json"], appliance.env);
    expect(JSON.parse(audit.stdout).ok).to.equal(true);
    const journal = await plumctl(["upgrade", "verify", "--json"], appliance.env);
    expect(JSON.parse(journal.stdout).ok).to.equal(true);
  });
});
