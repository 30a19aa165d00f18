import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { supportBundleWriter } from "../../appliance/support/support-bundle.ts";
import { supportDirOf, upgradeSupportBundle } from "../../appliance/upgrade/upgrade-host-adapter.ts";
import { runChecks } from "../../installer/checks/run-checks.ts";
import { runChild } from "../../lib/child-process.ts";
import { loadConfig } from "../../lib/config.ts";
import { waitFor } from "../../lib/wait.ts";
import { bootAgent, expectAtRest, expectRefusal, FakeWorld, finished, settled, upgradeTestBed, V1, V2 } from "../support/fake-upgrade-host.ts";

/**
 * The real UpgradeManager on a real journal (plum_ops of the test cluster) over an in-memory UpgradeHost: the
 * way through, an agent killed in every step (the fake host stops answering there, a new manager on the same
 * journal resumes), abort, approval, the maintenance window and the boot fallback.
 */
describe("upgrade manager (fake host, real journal)", function () {
  this.timeout(60_000);
  const bed = upgradeTestBed();
  let world: FakeWorld;

  beforeEach(() => {
    world = new FakeWorld([V1, V2]);
  });

  it("goes verify → snapshot → stage → validate → promote → soak → complete, and says so in journal, report and audit", async () => {
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "user:admin", installed: V1.version });
    const done = await settled(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
    expect(Object.keys(done.report.steps)).to.have.members(["verify", "snapshot", "stage", "validate", "promote", "soak", "complete"]);
    expect(done.rollbackMode).to.equal("traffic-only");
    expect(done.report.migrations?.staging?.ran).to.deep.equal([V2.schemaVersion]);
    expect(done.report.migrations?.production?.ran).to.deep.equal([V2.schemaVersion]);
    expect(done.snapshotSetId).to.equal("set-1");
    expect(world.calls).to.include.members([
      "staging.restore set-1",
      "commands.migrate staging 0.2.0",
      "commands.validate staging 0.2.0 health,smoke",
      "commands.validate staging 0.1.0 smoke",
      "commands.migrate production 0.2.0",
      "production.switchTo 0.2.0 keep",
      "production.stop 0.1.0",
      "releases.prune keep 0.2.0,0.1.0",
    ]);
    // The old release stays warm through the soak: it stops only in complete.
    expect(world.calls.indexOf("production.stop 0.1.0")).to.be.greaterThan(world.calls.indexOf("production.ensureWarm 0.1.0"));
    await expectAtRest(world, bed.sequelize, { serves: V2.version, schema: V2.schemaVersion });
    expect(await journal.productionVersion()).to.equal(V2.version);
    const phases = (await journal.entries(u.id)).map((e) => `${e.step} ${e.phase}`);
    expect(phases.filter((p) => p.endsWith("started"))).to.have.length(7);
    expect(phases.filter((p) => p.endsWith("done"))).to.have.length(7);
    const actions = (await new AuditLog(bed.sequelize).list({ limit: 100 })).filter((r) => r.target === `upgrade:${u.id}`).map((r) => r.action);
    expect(actions).to.include.members(["upgrade.start", "upgrade.verify", "upgrade.promote", "upgrade.completed"]);
  });

  const beforePromote: Array<[string, string]> = [
    ["verify", "releases.recheck"],
    ["snapshot", "snapshot"],
    ["stage", "commands.migrate staging"],
    ["validate", "commands.validate staging 0.2.0"],
  ];
  for (const [step, call] of beforePromote) {
    it(`killed during ${step}: the restarted agent undoes it, production untouched`, async () => {
      const first = await bootAgent(world, bed.sequelize, V1.version);
      const crashed = world.crashAt(call);
      const u = await first.manager.start({ version: V2.version, actor: "cli", installed: V1.version });
      expect(await crashed).to.match(new RegExp(`^${call}`));
      const before = (await first.journal.get(u.id))!;
      expect([before.step, before.status]).to.deep.equal([step, "running"]);

      const second = await bootAgent(world, bed.sequelize, V1.version);
      expect(second.resumed).to.equal(`upgrade ${u.id} undone (it was at ${step})`);
      const after = (await second.journal.get(u.id))!;
      expect(after.status).to.equal("aborted");
      expect(after.error).to.include(`interrupted by an agent restart during ${step}`);
      expect((await second.journal.entries(u.id)).at(-1)).to.include({ step, phase: "undone" });
      expect(world.calls.filter((c) => c.startsWith("commands.migrate production"))).to.deep.equal([]);
      // Undone at boot is an unsuccessful end like any other: the restarted agent writes its support bundle, in the
      // background (stop waits for it; the chains are verified once nothing appends any more).
      await second.manager.stop();
      await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
      expect((await second.journal.get(u.id))!.report.supportBundle).to.include({ file: `/nonexistent/support-bundle-of-upgrade-${u.id}.tar.gz` });
      expect(world.supportBundles).to.deep.equal([u.id]);
    });
  }

  it("an upgrade undone at boot leaves a real support bundle, with the doctor checks the agent was given", async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), "plum-upgrade-bundle-"));
    try {
      const config = loadConfig({ PLUM_HOME: home, ...bed.dbs.env });
      // What the agent's host writes with (upgrade-host-adapter.ts), given the checks as `plumctl agent` gives them.
      world.writeSupportBundle = upgradeSupportBundle(config, () => runChecks("doctor", { config }));
      const first = await bootAgent(world, bed.sequelize, V1.version);
      const crashed = world.crashAt("commands.migrate staging");
      const u = await first.manager.start({ version: V2.version, actor: "cli", installed: V1.version });
      await crashed;
      expect(world.supportBundles, "the crashed agent wrote nothing").to.deep.equal([]);

      const second = await bootAgent(world, bed.sequelize, V1.version);
      expect(second.resumed).to.equal(`upgrade ${u.id} undone (it was at stage)`);
      // The boot does not wait for the bundle; the agent's stop does.
      await second.manager.stop();
      const done = (await second.journal.get(u.id))!;
      expect(done.status).to.equal("aborted");
      const written = done.report.supportBundle as { file: string };
      expect(path.dirname(written.file)).to.equal(supportDirOf(config));
      expect(path.basename(written.file)).to.include(`-upgrade-${u.id}-aborted-`);
      expect(statSync(written.file).mode & 0o777).to.equal(0o600);
      const member = async (name: string) => (await runChild(["tar", "-x", "-z", "-O", "-f", written.file, name], { timeoutMs: 10_000 })).stdout;
      const doctor = JSON.parse(await member("doctor.json")) as Array<{ id: string; ok: boolean }>;
      expect(doctor.map((r) => r.id)).to.include.members(["node-version", "disk-space", "postgres-server"]);
      expect(await member("doctor.txt")).to.match(/^(ok|FAIL) {2}/);
      const collection = JSON.parse(await member("collection.json"));
      expect(collection.collectors.find((c: { collector: string }) => c.collector === "doctor")).to.include({ outcome: "collected" });
      const inBundle = JSON.parse(await member("upgrades/upgrades.json")).upgrades.find((x: { id: number }) => x.id === u.id);
      expect([inBundle.status, inBundle.error]).to.deep.equal(["aborted", done.error]);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  const fromPromote: Array<[string, string, boolean]> = [
    ["promote", "commands.migrate production", true], // production migrated, not switched yet
    ["promote", "production.switchTo 0.2.0 keep", true], // switched, the pointer not moved yet
    ["soak", "production.ensureWarm 0.1.0", false],
    ["complete", "production.stop 0.1.0", false],
  ];
  for (const [step, call, after] of fromPromote) {
    it(`killed during ${step} (at ${call}${after ? ", after it" : ""}): the restarted agent resumes it to completion`, async () => {
      const first = await bootAgent(world, bed.sequelize, V1.version);
      const crashed = world.crashAt(call, { after });
      const u = await first.manager.start({ version: V2.version, actor: "cli", installed: V1.version });
      await crashed;
      expect((await first.journal.get(u.id))!.step).to.equal(step);

      const second = await bootAgent(world, bed.sequelize, V1.version);
      expect(second.resumed).to.equal(`upgrade ${u.id} resumed at ${step}`);
      const done = await settled(second.journal, u.id);
      await second.manager.stop();
      expect(done.status, done.error ?? "").to.equal("completed");
      await expectAtRest(world, bed.sequelize, { serves: V2.version, schema: V2.schemaVersion });
      expect(await second.journal.productionVersion()).to.equal(V2.version);
    });
  }

  it("a release whose suites fail on staging is aborted: staging torn down, production untouched, the report kept", async () => {
    world.behaviour.releaseSuitesPass = false;
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const done = await settled(journal, u.id);
    await manager.stop();
    expect(done.status).to.equal("aborted");
    expect(done.error).to.equal("0.2.0 failed validation on staging: health: failed (injected)");
    expect(done.report.steps.validate.outcome).to.equal("failed");
    expect(done.report.suites?.release).to.have.length(2);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("a failed upgrade leaves a support bundle, written after its end, whose path is in its report", async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), "plum-upgrade-bundle-"));
    try {
      const config = loadConfig({ PLUM_HOME: home, ...bed.dbs.env });
      world.writeSupportBundle = async () => (await supportBundleWriter({ config, dir: path.join(home, "support") })).file;
      world.behaviour.releaseSuitesPass = false;
      const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
      const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
      const done = await waitFor(
        "the support bundle in the report",
        async () => ((await journal.get(u.id))?.report.supportBundle ? journal.get(u.id) : undefined),
        {
          timeoutMs: 20_000,
        },
      );
      await manager.stop();
      expect(done!.status).to.equal("aborted");
      const written = done!.report.supportBundle as { file: string };
      expect(written.file.startsWith(path.join(home, "support"))).to.equal(true);
      expect(statSync(written.file).mode & 0o777).to.equal(0o600);
      expect(world.supportBundles).to.deep.equal([u.id]);
      // The bundle holds the upgrade as it ended: written after the last state, before its own path was added.
      const listed = await runChild(["tar", "-x", "-z", "-O", "-f", written.file, "upgrades/upgrades.json"], { timeoutMs: 10_000 });
      const inBundle = JSON.parse(listed.stdout).upgrades.find((x: { id: number }) => x.id === u.id);
      expect([inBundle.status, inBundle.error]).to.deep.equal(["aborted", done!.error]);
      const [audited] = await new AuditLog(bed.sequelize).list({ action: "upgrade.support-bundle", limit: 1 });
      expect(audited.target).to.equal(`upgrade:${u.id}`);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it("refuses too little disk for a staging copy, with the measured numbers", async () => {
    world.behaviour.freeBytes = 100 * 2 ** 20;
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const done = await settled(journal, u.id);
    expect(done.status).to.equal("aborted");
    expect(done.error).to.equal(
      "not enough free disk for a staging copy: 100 MiB free for the database, 280 MiB needed (twice the 40 MiB product database, plus 200 MiB)",
    );
    expect(world.calls.some((c) => c.startsWith("snapshot"))).to.equal(false);
  });

  it("refuses a promotion looser than plum.yaml allows, and a release that is not newer", async () => {
    world.settings = { ...world.settings, promotion: "approval" };
    const { manager } = await bootAgent(world, bed.sequelize, V1.version);
    let err = await manager.start({ version: V2.version, promotion: "now", actor: "cli", installed: V1.version }).catch((e: Error) => e);
    expect((err as Error).message).to.equal('promotion "now" is not allowed here: upgrades.promotion in plum.yaml requires "approval"');
    err = await manager.start({ version: V1.version, promotion: "approval", actor: "cli", installed: V1.version }).catch((e: Error) => e);
    expect((err as Error).message).to.equal("0.1.0 is not newer than 0.1.0, which serves production");
  });

  it("waits for an admin's approval, then promotes and records who approved", async () => {
    world.settings = { ...world.settings, promotion: "approval" };
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    const waiting = await settled(journal, u.id);
    expect([waiting.step, waiting.status]).to.deep.equal(["promote", "waiting"]);
    expect(world.serving?.version).to.equal(V1.version);
    await manager.approve("user:admin");
    const done = await finished(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
    expect(done.report.promotion).to.deep.equal({ waitedFor: "approval", approvedBy: "user:admin" });
    await expectAtRest(world, bed.sequelize, { serves: V2.version, schema: V2.schemaVersion });
  });

  it("an approval survives a restart while waiting", async () => {
    world.settings = { ...world.settings, promotion: "approval" };
    const first = await bootAgent(world, bed.sequelize, V1.version);
    const u = await first.manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    await settled(first.journal, u.id);
    await first.manager.stop();
    const second = await bootAgent(world, bed.sequelize, V1.version);
    expect(second.resumed).to.equal(`upgrade ${u.id} resumed at promote`);
    await second.manager.approve("user:admin");
    const done = await finished(second.journal, u.id);
    await second.manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
  });

  it("promotes in the maintenance window only: waits while it is shut, goes when it is open", async () => {
    const now = new Date();
    const shutHour = (now.getUTCHours() + 12) % 24;
    world.settings = { ...world.settings, promotion: "window", window: { cron: `0 ${shutHour} * * *`, minutes: 60 } };
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    expect((await settled(journal, u.id)).status).to.equal("waiting");
    await new Promise((r) => setTimeout(r, 1500)); // the gate looked at least once more
    expect((await journal.get(u.id))!.status).to.equal("waiting");
    expect(world.calls.some((c) => c.startsWith("commands.migrate production"))).to.equal(false);
    world.settings = { ...world.settings, window: { cron: "* * * * *", minutes: 5 } }; // plum.yaml reloaded: open now
    const done = await finished(journal, u.id);
    await manager.stop();
    expect(done.status, done.error ?? "").to.equal("completed");
    expect(done.report.promotion?.waitedFor).to.equal("window");
    expect(done.report.promotion?.windowOpenedAt).to.be.a("string");
  });

  it("aborts while waiting for promotion (staging dropped) and, during a step, once the step ends", async () => {
    world.settings = { ...world.settings, promotion: "approval" };
    const { manager, journal } = await bootAgent(world, bed.sequelize, V1.version);
    const u = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    await settled(journal, u.id);
    expect(world.stagingDatabase).to.equal(true);
    await manager.abort("user:admin"); // the promotion gate sees it within its next look
    const aborted = await finished(journal, u.id);
    expect([aborted.status, aborted.error]).to.deep.equal(["aborted", "aborted while waiting for promotion"]);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });

    const held = world.hold("commands.migrate staging");
    const next = await manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    await held.reached;
    expect((await manager.abort("user:admin")).status).to.equal("running"); // the stage step finishes first
    held.release();
    const done = await finished(journal, next.id);
    await manager.stop();
    expect([done.status, done.error]).to.deep.equal(["aborted", "aborted before promotion"]);
    expect(world.calls.filter((c) => c.startsWith("commands.validate"))).to.have.length(2); // the first upgrade's only
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
    await expectRefusal(manager.abort("user:admin"), "there is no upgrade to abort");
  });

  it("at boot, a promoted release that cannot start makes production fall back; the resumed soak rolls it back", async () => {
    world.settings = { ...world.settings, soakSeconds: 30 };
    const first = await bootAgent(world, bed.sequelize, V1.version);
    const crashed = world.crashAt("production.ensureWarm 0.1.0"); // in the soak: 0.2.0 serves, the pointer names it
    const u = await first.manager.start({ version: V2.version, actor: "cli", installed: V1.version });
    await crashed;
    world.behaviour.cannotStart.add(V2.version);

    const second = await bootAgent(world, bed.sequelize, V1.version);
    expect(world.serving?.version).to.equal(V1.version);
    const done = await settled(second.journal, u.id);
    await second.manager.stop();
    expect(done.status, done.error ?? "").to.equal("rolled-back");
    expect(done.report.rollback?.reason).to.equal("soak breach: health: 1 failed health checks in a row (limit 1)");
    const notes = (await second.journal.entries(u.id)).filter((e) => e.phase === "note").map((e) => e.detail);
    expect(notes[0]).to.include({ fellBackTo: V1.version });
    const [fallback] = await new AuditLog(bed.sequelize).list({ action: "upgrade.fallback", limit: 1 });
    expect(fallback.target).to.equal(`upgrade:${u.id}`);
    await expectAtRest(world, bed.sequelize, { serves: V1.version, schema: V1.schemaVersion });
  });

  it("with nothing to fall back to, a release that cannot start fails the boot", async () => {
    world.behaviour.cannotStart.add(V1.version);
    const err = await bootAgent(world, bed.sequelize, V1.version).catch((e: Error) => e);
    expect((err as Error).message).to.equal("instance production@0.1.0 did not become ready");
  });
});
