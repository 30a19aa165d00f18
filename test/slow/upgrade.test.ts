import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { waitFor } from "../../lib/wait.ts";
import { Restic } from "../../backup/restic/restic.ts";
import { opsRows } from "../support/ops-rows.ts";
import { plumctl } from "../support/plumctl.ts";
import { addMigration, compose, payoutsRoundHalfUp, unhealthyInProductionAfter, V2_MIGRATION } from "../support/release-patches.ts";
import { RunningAppliance } from "../support/running-appliance.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";

const V3_MIGRATION = addMigration("1732000000600_badges", "create table badges (id serial primary key, name text not null)", "drop table badges");

/** Upgrades end to end: real agent, real bundles built from this tree, real PostgreSQL and restic. */
describe("upgrades: verify → snapshot → stage → validate → promote → soak → rollback", function () {
  this.timeout(600_000);
  let appliance: RunningAppliance;
  const bundles: Record<string, string> = {};
  let outDir: string;

  before(async () => {
    outDir = mkdtempSync(path.join(tmpdir(), "plum-upgrade-bundles-"));
    const { privateKey } = testVendorKeys();
    bundles.v2 = await buildTestBundle({ version: "0.2.0", patch: V2_MIGRATION, key: privateKey, outDir });
    bundles.badPayouts = await buildTestBundle({ version: "0.3.0", patch: compose(V2_MIGRATION, payoutsRoundHalfUp), key: privateKey, outDir });
    bundles.unhealthy = await buildTestBundle({
      version: "0.3.1",
      patch: compose(V2_MIGRATION, V3_MIGRATION, unhealthyInProductionAfter(1500)),
      key: privateKey,
      outDir,
    });
    appliance = await RunningAppliance.forUpgrades(testVendorKeys().publicKeyPem);
  });
  after(async () => {
    await appliance?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  it("imports a signed bundle and lists it", async () => {
    const res = await plumctl(["release", "import", bundles.v2], appliance.env, 120_000);
    expect(res.code, res.stderr).to.equal(0);
    const list = await plumctl(["release", "list"], appliance.env);
    expect(list.stdout).to.include("0.2.0");
  });

  it("v1 → v2 completes: /version is v2, the data written before and during the upgrade is all there", async () => {
    const schemaV1 = await appliance.schema();
    const before = await appliance.count("select count(*) as n from participants");
    const w = appliance.writer("during-v2");
    const res = await plumctl(["upgrade", "start", "0.2.0", "--now"], appliance.env, 300_000);
    const written = await w.stop();
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    const s = await appliance.upgradeStatus();
    expect(s.latest.status, s.latest.error ?? "").to.equal("completed");
    expect(s.latest.rollbackMode).to.equal("traffic-only");
    expect((await appliance.served()).version).to.equal("0.2.0");
    expect((await appliance.served()).schemaVersion).to.equal("1732000000500_release-notes");
    expect(await appliance.schema()).to.not.equal(schemaV1);
    expect(await appliance.count("select count(*) as n from participants")).to.equal(before);
    expect(written).to.be.greaterThan(10);
    expect(await appliance.count("select count(*) as n from programmes where name like 'during-v2-%'")).to.equal(written);
    expect(await appliance.stagingExists(), "staging dropped").to.equal(false);
    expect(appliance.productionInstances()).to.deep.equal(["production@0.2.0"]);
    for (const step of ["verify", "snapshot", "stage", "validate", "promote", "soak", "complete"])
      expect(s.latest.report.steps[step]?.outcome, step).to.equal("done");
    expect(s.latest.report.migrations.staging.ran).to.deep.equal(["1732000000500_release-notes"]);
  });

  it("a release whose payouts suite fails on staging is aborted: production unchanged, staging gone, the report names the check", async () => {
    expect((await plumctl(["release", "import", bundles.badPayouts], appliance.env, 120_000)).code).to.equal(0);
    const res = await plumctl(["upgrade", "start", "0.3.0", "--now"], appliance.env, 300_000);
    expect(res.code).to.equal(1);
    const s = await appliance.upgradeStatus();
    expect(s.latest.status).to.equal("aborted");
    expect(s.latest.error).to.match(/payouts: .*half/);
    const payouts = (
      s.latest.report.suites.release as Array<{ suite: string; passed: boolean; checks: Array<{ name: string; passed: boolean; detail?: string }> }>
    ).find((r) => r.suite === "payouts")!;
    expect(payouts.passed).to.equal(false);
    expect(
      payouts.checks
        .filter((c) => !c.passed)
        .map((c) => `${c.name}: ${c.detail}`)
        .join("\n"),
    ).to.include("exactly half a minor unit rounds down");
    expect((await appliance.served()).version).to.equal("0.2.0");
    expect(await appliance.stagingExists()).to.equal(false);
    expect(appliance.productionInstances()).to.deep.equal(["production@0.2.0"]);

    // Its snapshot is of production on 0.2.0, which the agent (0.1.0) is not: the set and its snapshots say 0.2.0.
    const [snapshot] = await opsRows<{ id: string; kind: string; app_version: string; schema_version: string }>(
      appliance.dbs,
      "select id, kind, app_version, schema_version from backup_sets where kind = 'pre-upgrade' order by started_at desc limit 1",
    );
    expect(snapshot).to.deep.include({ kind: "pre-upgrade", app_version: "0.2.0", schema_version: "1732000000500_release-notes" });
    const restic = new Restic();
    const repo = {
      role: "primary" as const,
      location: path.join(appliance.home, "backups", "primary"),
      passwordFile: path.join(appliance.home, "secrets", "restic-password"),
    };
    const tagged = await restic.snapshots(repo, { tags: [`set:${snapshot.id}`] });
    expect(tagged).to.have.length(3);
    for (const t of tagged) expect(t.tags).to.include.members(["kind:pre-upgrade", "app:0.2.0", "schema:1732000000500_release-notes"]);
  });

  it("a release that turns unhealthy during the soak is rolled back automatically; rows written during the soak stay", async () => {
    expect((await plumctl(["release", "import", bundles.unhealthy], appliance.env, 120_000)).code).to.equal(0);
    // Promotion after an admin's approval: validated, then it waits with production untouched.
    const waiting = await plumctl(["upgrade", "start", "0.3.1", "--approve"], appliance.env, 300_000);
    expect(waiting.code, waiting.stdout + waiting.stderr).to.equal(0);
    expect((await appliance.upgradeStatus()).latest.status).to.equal("waiting");
    expect(waiting.stdout).to.include("plumctl upgrade approve");
    expect((await appliance.served()).version).to.equal("0.2.0");
    const approved = await plumctl(["upgrade", "approve"], appliance.env);
    expect(approved.code, approved.stderr).to.equal(0);
    // Wait for the soak, then write through it.
    await waitFor("the soak to begin", appliance.upgradeSettled(["soaking"]), { timeoutMs: 150_000, maxDelayMs: 100 });
    await appliance.query("insert into release_notes (body) values ('written during the soak')");
    const s = await waitFor("the rollback to finish", appliance.upgradeSettled(["rolled-back", "failed"]), { timeoutMs: 240_000, maxDelayMs: 500 });
    expect(s.latest.status, s.latest.error ?? "").to.equal("rolled-back");
    expect(s.latest.rollbackMode).to.equal("traffic-only");
    expect(s.latest.report.rollback.reason).to.match(/soak breach: health/);
    expect(s.latest.report.rollback.secondsToOldVersion).to.be.a("number");
    expect(s.latest.report.promotion.approvedBy).to.equal("cli");
    expect((await appliance.served()).version).to.equal("0.2.0");
    expect(await appliance.schema()).to.equal("1732000000500_release-notes");
    expect(await appliance.count("select count(*) as n from release_notes where body = 'written during the soak'")).to.equal(1);
    expect(appliance.productionInstances()).to.deep.equal(["production@0.2.0"]);
  });

  it("plumctl rollback goes back to the release before, schema included", async () => {
    const res = await plumctl(["rollback", "--to", "0.1.0"], appliance.env, 300_000);
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    expect((await appliance.served()).version).to.equal("0.1.0");
    expect(await appliance.schema()).to.equal("1732000000200_payouts");
    expect(await appliance.count("select count(*) as n from programmes where name like 'during-v2-%'")).to.be.greaterThan(10);
    expect(appliance.productionInstances()).to.deep.equal(["production@0.1.0"]);
  });

  it("the audit log and the upgrade journal verify", async () => {
    const audit = await plumctl(["audit", "verify", "--json"], appliance.env);
    expect(JSON.parse(audit.stdout).ok).to.equal(true);
    const journal = await plumctl(["upgrade", "verify", "--json"], appliance.env);
    expect(JSON.parse(journal.stdout).ok).to.equal(true);
    expect(existsSync(path.join(appliance.home, "releases", "0.2.0"))).to.equal(true);
  });
});
