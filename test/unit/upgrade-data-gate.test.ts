import { expect } from "chai";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { validateStep } from "../../appliance/upgrade/upgrade-steps.ts";
import type { Upgrade } from "../../appliance/upgrade/upgrade-journal.ts";
import { declared, editedFingerprint, RELEASE_NOTES_DECLARED, releaseNotesMigration } from "../support/fake-fingerprints.ts";
import { bootAgent, expectAtRest, expectRefusal, FakeUpgradeHost, FakeWorld, finished, settled, upgradeTestBed, V1, V2 } from "../support/fake-upgrade-host.ts";

const MIGRATION = V2.schemaVersion;

/** 0.2.0's migration, and then `damage` too (what a release that silently alters rows does). */
function withDamage(damage: Parameters<typeof editedFingerprint>[1]) {
  return (f: Parameters<typeof releaseNotesMigration>[0]) => editedFingerprint(releaseNotesMigration(f), damage);
}

/**
 * The data-diff gate in the upgrade manager's validate step (fake host, real journal): staging fingerprinted by
 * stage before and after the migrations, judged against the release's declarations; refused at validate with
 * production untouched, shown when declared, held for approval when the bundle declares nothing.
 */
describe("upgrade data-diff gate (fake host, real journal)", function () {
  this.timeout(60_000);
  const bed = upgradeTestBed();
  let world: FakeWorld;

  beforeEach(() => {
    world = new FakeWorld([V1, V2]);
  });

  it("stage fingerprints staging before and after the migrations; validate judges them first and keeps the findings, not the fingerprints", async () => {
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const done = await settled(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
    const calls = world.calls;
    // The fingerprint before is the one the restore verified; the one after follows the migrations; the gate
    // runs before any suite writes to staging.
    expect(calls.indexOf("staging.fingerprint")).to.be.greaterThan(calls.indexOf("commands.migrate staging 0.2.0"));
    expect(calls.filter((c) => c === "staging.fingerprint")).to.have.length(1);
    const gate = done.report.dataGate!;
    expect(gate.fingerprints, "fingerprints dropped once judged").to.equal(undefined);
    expect(gate).to.deep.include({ verdict: "passed", declaredBy: "manifest", migrations: [MIGRATION], undeclared: [], unread: [] });
    expect(gate.before).to.deep.include({ from: "restore", tables: 3, rows: 242 });
    expect(gate.after).to.deep.include({ tables: 4, rows: 242 });
    expect(gate.declared!.map((d) => [d.change, d.table, d.column, d.measured])).to.deep.equal([
      ["table-added", "release_notes", undefined, "added, 0 rows"],
      ["column-added", "participants", "nickname", "added, 0 non-null values"],
    ]);
    expect((done.report.steps.stage.detail as { fingerprintSeconds: unknown }).fingerprintSeconds).to.deep.equal({ before: 0.01, after: 0.01 });
  });

  it("refuses at validate a value change the release does not declare, naming table, column, rows and keys: production untouched", async () => {
    world.migrationEffects.set(
      V2.version,
      withDamage((t) => (t.participants.columns.email.hash = "lower-cased")),
    );
    world.rowDifferences.set("participants", {
      compared: 200,
      deleted: { rows: 0, examples: [] },
      inserted: { rows: 0, examples: [] },
      changed: { id: { rows: 0, examples: [] }, name: { rows: 0, examples: [] }, email: { rows: 2, examples: ["id=3", "id=7"] } },
    });
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const done = await finished(journal, u.id);
    await manager.stop();
    expect(done.status).to.equal("aborted");
    expect(done.error).to.equal("0.2.0's migrations changed data they do not declare: participants.email: 2 rows changed (e.g. id=3, id=7)");
    expect(done.report.steps.validate.outcome).to.equal("failed");
    expect(done.report.dataGate).to.deep.include({ verdict: "refused" });
    expect(done.report.dataGate!.undeclared).to.deep.equal([
      { table: "participants", column: "email", kind: "values-changed", what: "values changed", rows: 2, examples: ["id=3", "id=7"] },
    ]);
    expect(done.report.dataGate!.rowsSeconds).to.be.a("number");
    expect(world.calls).to.include(`staging.rowDifferences ${done.snapshotSetId} participants`);
    expect(
      world.calls.some((c) => c.startsWith("commands.validate")),
      "no suite ran",
    ).to.equal(false);
    expect(world.calls.some((c) => c.startsWith("commands.migrate production"))).to.equal(false);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
    const [aborted] = await new AuditLog(bed.sequelize).list({ action: "upgrade.aborted", limit: 1 });
    expect(aborted.detail).to.deep.include({ why: done.error, step: "validate" });
  });

  it("refuses rows deleted and rows swapped (same counts), from the fingerprints alone when the row comparison fails", async () => {
    world.migrationEffects.set(
      V2.version,
      withDamage((t) => {
        t.vouchers.rows = 37;
        t.settings.columns.value.hash = "swapped";
      }),
    );
    world.fail("staging.rowDifferences", "the snapshot did not restore (injected)");
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const done = await finished(journal, u.id);
    await manager.stop();
    expect(done.status).to.equal("aborted");
    expect(done.error).to.equal("0.2.0's migrations changed data they do not declare: settings.value: values changed; vouchers: 3 rows fewer (40 → 37)");
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("passes the same change when the release declares it, and shows the declaration with what was measured", async () => {
    world.releases.set(V2.version, {
      ...world.facts(V2.version),
      dataChanges: {
        [MIGRATION]: {
          changes: [
            ...RELEASE_NOTES_DECLARED[MIGRATION].changes,
            { change: "column-rewritten", table: "participants", column: "email", source: "stated", note: "e-mail addresses are kept in lower case" },
          ],
        },
      },
    });
    world.migrationEffects.set(
      V2.version,
      withDamage((t) => (t.participants.columns.email.hash = "lower-cased")),
    );
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const done = await finished(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
    expect(done.report.dataGate!.verdict).to.equal("passed");
    expect(done.report.dataGate!.declared!.at(-1)).to.deep.equal({
      change: "column-rewritten",
      table: "participants",
      column: "email",
      source: "stated",
      note: "e-mail addresses are kept in lower case",
      migration: MIGRATION,
      measured: "values changed",
    });
    expect(
      world.calls.some((c) => c.startsWith("staging.rowDifferences")),
      "no row comparison on the way through",
    ).to.equal(false);
  });

  it("a bundle built before declarations is not refused: what was measured is shown and the promotion waits for an admin", async () => {
    world.releases.set(V2.version, { ...world.facts(V2.version), dataChanges: undefined });
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, promotion: "now", actor: "cli", installed: V1.version });
    const waiting = await settled(journal, u.id);
    expect([waiting.step, waiting.status, waiting.promotion]).to.deep.equal(["promote", "waiting", "approval"]);
    expect(waiting.report.dataGate).to.deep.include({ verdict: "held-for-approval", declaredBy: "none" });
    expect(waiting.report.dataGate!.hold).to.equal(
      "0.2.0's bundle declares no data changes (built before declarations); its migrations changed: column participants.nickname appeared; table release_notes appeared (0 rows). An admin approves the promotion after reading them",
    );
    const notes = (await journal.entries(u.id)).filter((e) => e.phase === "note");
    expect(notes.map((e) => [e.step, e.detail.promotion])).to.deep.equal([["validate", "approval"]]);
    await manager.approve("user:admin");
    const done = await finished(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
    await expectAtRest(world, bed.sequelize, { serves: V2.version, schema: V2.schemaVersion });
  });

  it("a bundle without declarations whose migrations change no data passes as it is", async () => {
    world.releases.set(V2.version, { ...world.facts(V2.version), dataChanges: undefined });
    world.migrationEffects.delete(V2.version);
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const done = await finished(journal, u.id);
    await manager.stop();
    expect([done.status, done.promotion]).to.deep.equal(["completed", "now"]);
    expect(done.report.dataGate!.verdict).to.equal("passed");
  });

  it("killed during the gate's row comparison: the restarted agent undoes the upgrade (a resume never skips the gate)", async () => {
    world.migrationEffects.set(
      V2.version,
      withDamage((t) => (t.vouchers.columns.points_cost.hash = "rounded")),
    );
    const first = await bootAgent(world, bed.sequelize, V1.version);
    const crashed = world.crashAt("staging.rowDifferences");
    const u = await first.manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    await crashed;
    expect((await first.journal.get(u.id))!.step).to.equal("validate");
    const second = await bootAgent(world, bed.sequelize, V1.version);
    expect(second.resumed).to.equal(`upgrade ${u.id} undone (it was at validate)`);
    expect((await second.journal.get(u.id))!.status).to.equal("aborted");
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("validate refuses to judge without stage's fingerprints", async () => {
    const host = new FakeUpgradeHost(world, new AuditLog(bed.sequelize));
    const u = { id: 1, fromVersion: V1.version, toVersion: V2.version, snapshotSetId: "set-1", report: { steps: {} } } as unknown as Upgrade;
    await expectRefusal(
      validateStep(host, u, { steps: {} }),
      "staging has no fingerprints from the stage step: the data-diff gate cannot judge the migrations",
    );
    expect(world.calls).to.deep.equal([]);
  });

  it("the declarations of every migration that ran count, each under its own name", async () => {
    world.releases.set(V2.version, {
      ...world.facts(V2.version),
      dataChanges: declared("1732000000400_other", { change: "table-added", table: "release_notes" }),
    });
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const done = await finished(journal, u.id);
    await manager.stop();
    // 1732000000400_other did not run here: its declaration covers nothing.
    expect(done.error).to.equal(
      "0.2.0's migrations changed data they do not declare: column participants.nickname appeared; table release_notes appeared (0 rows)",
    );
  });
});
