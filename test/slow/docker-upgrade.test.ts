import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { plumctl } from "../support/plumctl.ts";
import { addMigration, compose, unhealthyInProductionAfter, V2_MIGRATION } from "../support/release-patches.ts";
import { RunningAppliance, type ProductContainer } from "../support/running-appliance.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";

const V3_MIGRATION = addMigration("1732000000600_badges", "create table badges (id serial primary key, name text not null)", "drop table badges");

/**
 * Both ways a release runs on containers: 0.2.0 from its own image (the bundle's image.tar, loaded at import),
 * 0.3.1 and the agent's own 0.1.0 from the runtime image with their folder mounted read-only (a bundle without
 * an image; one image build fewer, the slowest part of this file).
 */

/**
 * The upgrade state machine on the docker runtime, end to end: product instances are containers on the test
 * run's engine, the agent a real process, the bundles signed and built from this tree, PostgreSQL and restic
 * real. One appliance through promote, an agent SIGKILLed mid-soak, a soak breach and a manual rollback.
 */
describe("upgrades on the docker runtime: promote, SIGKILL mid-soak, soak-breach rollback, manual rollback", function () {
  this.timeout(600_000);
  let appliance: RunningAppliance;
  let env: Record<string, string>;
  const bundles: Record<string, string> = {};
  let outDir: string;

  before(async () => {
    outDir = mkdtempSync(path.join(tmpdir(), "plum-docker-upgrade-bundles-"));
    const { privateKey, publicKeyPem } = testVendorKeys();
    const [v2, v3] = await Promise.all([
      buildTestBundle({ images: true, version: "0.2.0", patch: V2_MIGRATION, key: privateKey, outDir }),
      buildTestBundle({
        version: "0.3.1",
        patch: compose(V2_MIGRATION, V3_MIGRATION, unhealthyInProductionAfter(1500)),
        key: privateKey,
        outDir,
      }),
    ]);
    bundles.v2 = v2;
    bundles.unhealthy = v3;
    appliance = await RunningAppliance.forUpgrades(publicKeyPem, { runtime: "docker", soakSeconds: 6 });
    env = appliance.env;
    for (const bundle of [bundles.v2, bundles.unhealthy]) {
      const imported = await plumctl(["release", "import", bundle], env, 120_000);
      expect(imported.code, imported.stderr).to.equal(0);
    }
  });
  after(async () => {
    await appliance?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  /** The one running container of the production slot, and that it serves what the edge proxy answers. */
  async function servingContainer(version: string): Promise<ProductContainer> {
    expect((await appliance.served()).version).to.equal(version);
    expect(appliance.productionInstances()).to.deep.equal([`production@${version}`]);
    const [container] = (await appliance.containers()).filter((c) => c.slot === "production" && c.running);
    expect(container, "a running production container").to.not.equal(undefined);
    expect(container.version).to.equal(version);
    return container;
  }

  it("starts with production on a container", async () => {
    const container = await servingContainer("0.1.0");
    expect(container.networks).to.include(appliance.dockerNetwork());
  });

  it("v1 → v2 promotes onto a container: data written before and during the upgrade all there", async () => {
    const before = await appliance.count("select count(*) as n from participants");
    const w = appliance.writer("during-v2");
    const res = await plumctl(["upgrade", "start", "0.2.0", "--now"], env, 300_000);
    const written = await w.stop();
    const s = await appliance.upgradeStatus();
    expect(res.code, `${res.stdout}${res.stderr}\n${JSON.stringify(s.latest.report.steps, null, 1)}`).to.equal(0);
    expect(s.latest.status, s.latest.error ?? "").to.equal("completed");
    for (const step of ["verify", "snapshot", "stage", "validate", "promote", "soak", "complete"])
      expect(s.latest.report.steps[step]?.outcome, step).to.equal("done");
    expect(await appliance.schema()).to.equal("1732000000500_release-notes");
    expect(await appliance.count("select count(*) as n from participants")).to.equal(before);
    expect(written).to.be.greaterThan(10);
    expect(await appliance.count("select count(*) as n from programmes where name like 'during-v2-%'")).to.equal(written);
    expect(await appliance.stagingExists(), "staging dropped").to.equal(false);
    // 0.2.0 runs from the image its bundle carried; 0.1.0 ran from the runtime image with its folder mounted.
    expect((await servingContainer("0.2.0")).image).to.equal("plum-product:0.2.0");
    // The old release's container and the staging ones are gone, not left stopped.
    expect((await appliance.containers()).map((c) => `${c.slot}@${c.version}`)).to.deep.equal(["production@0.2.0"]);
  });

  it("a release that turns unhealthy in the soak is rolled back on containers; rows written during the soak stay", async () => {
    const started = await plumctl(["upgrade", "start", "0.3.1", "--now", "--no-follow"], env);
    expect(started.code, started.stdout + started.stderr).to.equal(0);
    await waitFor("the soak to begin", appliance.upgradeSettled(["soaking"]), { timeoutMs: 240_000, maxDelayMs: 100 });
    const soaking = await appliance.containers();
    expect(soaking.filter((c) => c.slot === "production" && c.running).map((c) => c.version)).to.include("0.3.1");
    await appliance.query("insert into release_notes (body) values ('written during the soak')");
    const s = await waitFor("the rollback to finish", appliance.upgradeSettled(["rolled-back", "failed"]), { timeoutMs: 240_000, maxDelayMs: 500 });
    expect(s.latest.status, s.latest.error ?? "").to.equal("rolled-back");
    expect(s.latest.rollbackMode).to.equal("traffic-only");
    expect(s.latest.report.rollback.reason).to.match(/soak breach: health/);
    expect(await appliance.schema()).to.equal("1732000000500_release-notes");
    expect(await appliance.count("select count(*) as n from release_notes where body = 'written during the soak'")).to.equal(1);
    await servingContainer("0.2.0");
    expect((await appliance.containers()).map((c) => `${c.slot}@${c.version}`)).to.deep.equal(["production@0.2.0"]);
  });

  it("plumctl rollback goes back to the release before on a container, schema included", async () => {
    const res = await plumctl(["rollback", "--to", "0.1.0"], env, 300_000);
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    expect(await appliance.schema()).to.equal("1732000000200_payouts");
    expect(await appliance.count("select count(*) as n from programmes where name like 'during-v2-%'")).to.be.greaterThan(10);
    await servingContainer("0.1.0");
    expect((await appliance.containers()).map((c) => `${c.slot}@${c.version}`)).to.deep.equal(["production@0.1.0"]);
  });

  it("the agent SIGKILLed mid-soak: its containers outlive it, the restarted agent re-adopts them (not restarted) and finishes", async () => {
    const started = await plumctl(["upgrade", "start", "0.2.0", "--now", "--no-follow"], env);
    expect(started.code, started.stdout + started.stderr).to.equal(0);
    const id = (await appliance.upgradeStatus()).latest.id;
    await waitFor("the soak to begin", appliance.upgradeSettled(["soaking"]), { timeoutMs: 240_000, firstDelayMs: 20, maxDelayMs: 50 });
    const before = (await appliance.containers()).filter((c) => c.running);
    expect(before.filter((c) => c.slot === "production").map((c) => c.version)).to.include("0.2.0");

    process.kill(appliance.agent.agentPid(), "SIGKILL");
    expect((await withDeadline("the agent to die mid-soak", 30_000, appliance.agent.exited)).signal).to.equal("SIGKILL");
    const orphaned = (await appliance.containers()).filter((c) => c.running);
    expect(orphaned.map((c) => [c.id, c.startedAt])).to.deep.equal(before.map((c) => [c.id, c.startedAt]));
    expect(await appliance.upgradeStatus().then((s) => s.latest.status)).to.equal("soaking");

    await appliance.startAgent();
    const after = await waitFor(
      `upgrade ${id} to settle after the restart`,
      async () => {
        const s = await appliance.upgradeStatus();
        return s.latest.id === id && ["completed", "rolled-back", "failed", "aborted"].includes(s.latest.status) ? s.latest : undefined;
      },
      { timeoutMs: 240_000, maxDelayMs: 500 },
    );
    expect(after.status, after.error ?? "").to.equal("completed");
    expect(await appliance.schema()).to.equal("1732000000500_release-notes");
    const serving = await servingContainer("0.2.0");
    // The very container that was soaking: adopted, never restarted.
    const adopted = before.find((c) => c.slot === "production" && c.version === "0.2.0")!;
    expect([serving.id, serving.startedAt, serving.restartCount]).to.deep.equal([adopted.id, adopted.startedAt, adopted.restartCount]);
    expect((await appliance.containers()).map((c) => `${c.slot}@${c.version}`)).to.deep.equal(["production@0.2.0"]);
    const journal = await plumctl(["upgrade", "verify", "--json"], env);
    expect(JSON.parse(journal.stdout).ok).to.equal(true);
  });
});
