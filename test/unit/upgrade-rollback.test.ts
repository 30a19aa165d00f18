import { expect } from "chai";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import type { UpgradeJournal } from "../../appliance/upgrade/upgrade-journal.ts";
import { waitFor } from "../../lib/wait.ts";
import { bootAgent, expectAtRest, expectRefusal, FakeWorld, settled, upgradeTestBed, V1, V2 } from "../support/fake-upgrade-host.ts";

const DOWN_TO_V1 = `commands.migrate production 0.2.0 to ${V1.schemaVersion}`;

/** Every way back: the three rollback modes, manual rollbacks (during promote, soak, to a retained release), crashes. */
describe("upgrade rollbacks (fake host, real journal)", function () {
  this.timeout(60_000);
  const bed = upgradeTestBed();
  let world: FakeWorld;

  beforeEach(() => {
    world = new FakeWorld([V1, V2]);
    world.settings = { ...world.settings, soakSeconds: 30 };
  });

  const soaking = (journal: UpgradeJournal, id: number) =>
    waitFor(`upgrade ${id} to soak`, async () => ((await journal.get(id))!.status === "soaking" ? true : undefined), {
      timeoutMs: 15_000,
      firstDelayMs: 10,
      maxDelayMs: 50,
    });

  async function upgradeThat(opts: { breaks?: boolean } = {}) {
    if (opts.breaks) world.behaviour.unhealthy.add(V2.version);
    const booted = await bootAgent(world, bed.sequelize, V1.version);
    const u = await booted.manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    return { ...booted, u };
  }

  it("traffic-only: a 5xx breach in the soak sends traffic back at once, then the down migrations run", async () => {
    const { manager, journal, u } = await upgradeThat();
    await soaking(journal, u.id);
    await waitFor("the soak to follow the answers", async () => (world.listeners.size > 0 ? true : undefined), { timeoutMs: 5000, firstDelayMs: 5 });
    world.answer(V2.version, 500, 25);
    const done = await settled(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("rolled-back");
    expect(done.rollbackMode).to.equal("traffic-only");
    expect(done.report.rollback?.reason).to.equal("soak breach: 5xx ratio 100.0 % over 25 requests (limit 2.0 %)");
    expect(done.report.soak).to.include({ requests: 25, errors5xx: 25 });
    expect(done.report.rollback?.secondsToOldVersion).to.be.a("number").and.lessThan(5);
    expect(world.calls).to.include.members(["production.switchTo 0.1.0 brief", "production.stop 0.2.0", DOWN_TO_V1]);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
    expect(await journal.productionVersion()).to.equal(V1.version);
  });

  it("traffic-only: down migrations that fail leave the schema ahead, and the old release serves on it", async () => {
    world.behaviour.downMigrationsWork = false;
    const { manager, journal, u } = await upgradeThat({ breaks: true });
    const done = await settled(journal, u.id);
    await manager.stop();
    expect([done.status, done.rollbackMode]).to.deep.equal(["rolled-back", "traffic-only"]);
    expect((done.report.steps.rollback.detail as { schemaLeftAhead: string }).schemaLeftAhead).to.equal("0.2.0's down migrations failed (injected)");
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V2.schemaVersion });
  });

  it("down-migrations: the old release fails on the new schema, so a breach takes production's schema back", async () => {
    world.behaviour.oldSmokeOnNewSchema = false;
    const { manager, journal, u } = await upgradeThat({ breaks: true });
    const done = await settled(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("rolled-back");
    expect(done.rollbackMode).to.equal("down-migrations");
    expect(done.report.rollbackMode?.why).to.match(
      /^0\.1\.0's smoke suite failed on the new schema \(smoke: failed \(injected\)\); 0\.2\.0's down migrations took staging back/,
    );
    expect(done.report.rollback?.reason).to.equal("soak breach: health: 1 failed health checks in a row (limit 1)");
    expect(done.report.migrations?.undone?.ran).to.deep.equal([V1.schemaVersion]);
    expect(world.calls).to.include(`commands.migrate staging 0.2.0 to ${V1.schemaVersion}`); // proven on staging first
    // Traffic went back before the schema was touched.
    expect(world.calls.indexOf("production.switchTo 0.1.0 brief")).to.be.lessThan(world.calls.indexOf(DOWN_TO_V1));
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("down-migrations: killed during the down migrations, the restarted agent finishes the rollback", async () => {
    world.behaviour.oldSmokeOnNewSchema = false;
    const crashed = world.crashAt(DOWN_TO_V1);
    const first = await upgradeThat({ breaks: true });
    await crashed;
    expect((await first.journal.get(first.u.id))!).to.include({ step: "rollback", status: "rolling-back" });
    const second = await bootAgent(world, bed.sequelize, V1.version);
    expect(world.serving?.version, "the pointer went back before the crash").to.equal(V1.version);
    const done = await settled(second.journal, first.u.id);
    await second.manager.stop();
    expect(done.status, done.error ?? "").to.equal("rolled-back");
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("restore-required: traffic goes back, the restore waits for an admin who sees the write window, then runs once", async () => {
    world.behaviour.oldSmokeOnNewSchema = false;
    world.behaviour.downMigrationsWork = false;
    const { manager, journal, u } = await upgradeThat({ breaks: true });
    const pending = await settled(journal, u.id);
    expect([pending.status, pending.rollbackMode]).to.deep.equal(["restore-pending", "restore-required"]);
    expect(pending.report.rollback?.writeWindow?.from).to.equal(pending.snapshotAt!.toISOString());
    expect(world.serving?.version).to.equal(V1.version);
    expect(world.restored).to.deep.equal([]);
    await expectRefusal(
      manager.rollback({ actor: "cli", installed: V1.version }),
      `upgrade ${u.id} is restore-pending at rollback: nothing to roll back to yet`,
    );

    await manager.confirmRestore("user:admin");
    const done = await settled(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("rolled-back");
    expect(world.restored).to.deep.equal([done.snapshotSetId]);
    expect(world.calls).to.include(`restoreProduction ${done.snapshotSetId} by user:admin`);
    expect(done.report.rollback).to.include({ restoreConfirmedBy: "user:admin" });
    expect(done.report.rollback?.restoredAt).to.be.a("string");
    const [confirmed] = await new AuditLog(bed.sequelize).list({ action: "upgrade.restore-confirmed", limit: 1 });
    expect(confirmed).to.include({ actor: "user:admin", target: `upgrade:${u.id}` });
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
    await expectRefusal(manager.confirmRestore("user:admin"), "no rollback is waiting for a restore confirmation");
  });

  it("restore-required with upgrades.autoRestore: restores without waiting", async () => {
    world.behaviour.oldSmokeOnNewSchema = false;
    world.behaviour.downMigrationsWork = false;
    world.settings = { ...world.settings, autoRestore: true };
    const { manager, journal, u } = await upgradeThat({ breaks: true });
    const done = await settled(journal, u.id);
    await manager.stop();
    expect([done.status, done.rollbackMode]).to.deep.equal(["rolled-back", "restore-required"]);
    expect(world.calls).to.include(`restoreProduction ${done.snapshotSetId} by agent`);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("a rollback asked for during promote wins over the soak once the switch is done", async () => {
    const held = world.hold("production.switchTo 0.2.0 keep");
    const { manager, journal, u } = await upgradeThat();
    await held.reached;
    const asked = await manager.rollback({ actor: "user:admin", installed: V1.version });
    expect([asked.step, asked.status]).to.deep.equal(["promote", "rolling-back"]);
    held.release();
    const done = await settled(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("rolled-back");
    expect(done.report.rollback?.reason).to.equal("manual rollback by user:admin");
    expect(done.report.steps.soak).to.equal(undefined);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("a rollback asked for during the soak ends the soak and goes back", async () => {
    const { manager, journal, u } = await upgradeThat();
    await soaking(journal, u.id);
    await manager.rollback({ actor: "cli", installed: V1.version });
    const done = await settled(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("rolled-back");
    expect(done.report.rollback?.reason).to.equal("manual rollback by cli");
    expect(done.report.soak?.breach).to.equal(undefined);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("rolls back to a retained release after a completed upgrade: snapshot, switch, the newer release's down migrations", async () => {
    world.settings = { ...world.settings, soakSeconds: 0 };
    const { manager, journal, u } = await upgradeThat();
    expect((await settled(journal, u.id)).status).to.equal("completed");
    await expectRefusal(manager.rollback({ to: V2.version, actor: "cli", installed: V1.version }), "0.2.0 is not older than 0.2.0, which serves production");
    const back = await manager.rollback({ actor: "cli", installed: V1.version });
    expect([back.kind, back.fromVersion, back.toVersion]).to.deep.equal(["rollback", V2.version, V1.version]);
    const done = await settled(journal, back.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
    expect(Object.keys(done.report.steps)).to.have.members(["snapshot", "promote", "rollback", "complete"]);
    expect(done.report.migrations?.undone?.ran).to.deep.equal([V1.schemaVersion]);
    expect(world.calls).to.include.members(["production.switchTo 0.1.0", DOWN_TO_V1]);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
    expect(await journal.productionVersion()).to.equal(V1.version);
    // The rollback is itself the completed change that brought 0.1.0: "back" from here would be forward.
    await expectRefusal(manager.rollback({ actor: "cli", installed: V1.version }), "0.2.0 is not older than 0.1.0, which serves production");
  });

  it("a manual rollback killed during its schema step is resumed: the retained release serves on its own schema", async () => {
    world.settings = { ...world.settings, soakSeconds: 0 };
    const first = await upgradeThat();
    await settled(first.journal, first.u.id);
    const crashed = world.crashAt(DOWN_TO_V1);
    const back = await first.manager.rollback({ to: V1.version, actor: "cli", installed: V1.version });
    await crashed;
    expect((await first.journal.get(back.id))!.step).to.equal("rollback");
    const second = await bootAgent(world, bed.sequelize, V1.version);
    expect(second.resumed).to.equal(`upgrade ${back.id} resumed at rollback`);
    const done = await settled(second.journal, back.id);
    await second.manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("refuses a rollback before promotion: abort it instead", async () => {
    const held = world.hold("commands.validate staging 0.2.0");
    const { manager, journal, u } = await upgradeThat();
    await held.reached;
    await expectRefusal(manager.rollback({ actor: "cli", installed: V1.version }), `upgrade ${u.id} is running at validate: nothing to roll back to yet`);
    await manager.abort("cli");
    held.release();
    const done = await settled(journal, u.id);
    await manager.stop();
    expect([done.status, done.error]).to.deep.equal(["aborted", "aborted before promotion"]);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });
});
