import { expect } from "chai";
import { UpgradeJournal } from "../../appliance/upgrade/upgrade-journal.ts";
import { upgradeTestBed } from "../support/fake-upgrade-host.ts";

describe("upgrade journal (real plum_ops)", function () {
  this.timeout(60_000);
  const bed = upgradeTestBed();

  it("keeps a rollback's reason when a step that finishes meanwhile writes the report from an older copy", async () => {
    const journal = new UpgradeJournal(bed.sequelize);
    const u = await journal.create({ kind: "upgrade", fromVersion: "0.1.0", toVersion: "0.2.0", promotion: "now", requestedBy: "cli" });
    const older = (await journal.get(u.id))!.report; // the soak step's copy, read before the rollback came
    await journal.update(u.id, { status: "rolling-back", report: { ...older, rollback: { reason: "manual rollback by cli", by: "cli" } } });
    const written = await journal.update(u.id, { report: { ...older, soak: { seconds: 3, requests: 10, errors5xx: 0, p99Ms: 5, healthFailures: 0 } } });
    expect(written.report.rollback).to.deep.equal({ reason: "manual rollback by cli", by: "cli" });
    expect(written.report.soak).to.include({ requests: 10 });
    // A report that carries its own rollback replaces the stored one (the rollback step adds to it).
    const later = await journal.update(u.id, {
      report: { ...written.report, rollback: { ...written.report.rollback!, trafficBackAt: "2026-12-01T00:00:00.000Z" } },
    });
    expect(later.report.rollback).to.include({ reason: "manual rollback by cli", trafficBackAt: "2026-12-01T00:00:00.000Z" });
  });
});
