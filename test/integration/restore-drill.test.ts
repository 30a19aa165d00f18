import { existsSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import type { BackupContext } from "../../backup/backup-context.ts";
import { restoreDrill } from "../../backup/drills/restore-drill.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { databaseNames, productContextOn, seedProductData } from "../support/restore-fixtures.ts";

describe("restore drill (scratch database and folder, verified, measured RTO)", () => {
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  let set: BackupSet;

  before(async () => {
    env = await startBackupEnv();
    ctx = env.ctx;
    await seedProductData(productContextOn(env.product), ctx.filesDir);
    set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
  });
  after(() => env.stop());

  async function expectScratchGone(): Promise<void> {
    expect(await databaseNames(ctx.pg, `${ctx.databases.product}_drill_%`)).to.deep.equal([]);
    const left = existsSync(ctx.workDir) ? readdirSync(ctx.workDir).filter((name) => name.startsWith("drill-")) : [];
    expect(left).to.deep.equal([]);
  }

  it("restores the latest set, verifies it, runs the suites, records the measured RTO and removes scratch", async () => {
    const report = await restoreDrill({ ctx, startedBy: "test" });

    expect(report.error).to.equal(undefined);
    expect(report).to.include({ setId: set.id, passed: true, verified: true });
    expect(report.rtoSeconds).to.be.greaterThan(0);
    expect(report.checks.map((c) => c.name)).to.include.members(["rows in ledger_entries", "rows in participants", "files and their sha256"]);
    expect(report.suites.map((s) => [s.suite, s.passed])).to.deep.equal([
      ["ledger", true],
      ["catalogue", true],
    ]);
    const [evidence] = await ctx.evidence.list({ kind: "drill", limit: 1 });
    expect(evidence).to.include({ outcome: "success", set_id: set.id, repository: "primary" });
    expect(evidence.detail).to.include({
      setId: set.id,
      rtoSeconds: report.rtoSeconds,
      verified: true,
      startedAt: report.startedAt,
      finishedAt: report.finishedAt,
    });
    expect(evidence.detail.suites).to.have.length(2);
    await expectScratchGone();
  });

  it("fails when a restored row differs from the manifest, naming the table", async () => {
    const report = await restoreDrill({
      ctx,
      setId: set.id,
      startedBy: "test",
      hooks: {
        afterRestore: async ({ sequelize }) => void (await sequelize.query("delete from catalogue_items where id = (select max(id) from catalogue_items)")),
      },
    });

    expect(report).to.include({ passed: false, verified: false });
    expect(report.error).to.match(/rows in catalogue_items: 1 restored, the manifest says 2/);
    const [evidence] = await ctx.evidence.list({ kind: "drill", limit: 1 });
    expect(evidence.outcome).to.equal("failure");
    expect(evidence.detail.error).to.equal(report.error);
    expect(evidence.detail.rtoSeconds).to.be.greaterThan(0);
    await expectScratchGone();
  });

  it("fails when a restored file differs from the manifest, naming the file", async () => {
    const report = await restoreDrill({
      ctx,
      startedBy: "test",
      hooks: { afterRestore: async ({ filesDir }) => writeFileSync(path.join(filesDir, "terms.txt"), "Points never expire.\n") },
    });

    expect(report.passed).to.equal(false);
    expect(report.error).to.match(/files and their sha256: sha256 differs: terms\.txt/);
    await expectScratchGone();
  });

  it("fails when a restored ledger entry was changed (same row count): its content check names table and column", async () => {
    const report = await restoreDrill({
      ctx,
      setId: set.id,
      startedBy: "test",
      hooks: {
        afterRestore: async ({ sequelize }) => {
          await sequelize.query("alter table ledger_entries disable trigger user");
          await sequelize.query("update ledger_entries set points = points + 1 where id = (select min(id) from ledger_entries where kind = 'award')");
        },
      },
    });

    expect(report).to.include({ passed: false, verified: false });
    expect(report.error).to.equal(`the restore does not match the manifest of set ${set.id}: content of ledger_entries: values differ in points`);
    expect(report.checks.find((c) => c.name === "rows in ledger_entries")?.passed, "its row count is unchanged").to.equal(true);
    expect(report.suites, "the suites run on a verified copy only").to.deep.equal([]);
    const [evidence] = await ctx.evidence.list({ kind: "drill", limit: 1 });
    expect((evidence.detail.checks as Array<{ name: string }>).find((c) => c.name === "content of ledger_entries")).to.deep.equal({
      name: "content of ledger_entries",
      passed: false,
      detail: "values differ in points",
    });
    await expectScratchGone();
  });

  it("fails when two restored values were swapped between rows: every count and value set the same", async () => {
    const report = await restoreDrill({
      ctx,
      setId: set.id,
      startedBy: "test",
      hooks: {
        afterRestore: async ({ sequelize }) =>
          void (await sequelize.query(
            "update participants p set email = q.email from participants q where (p.id, q.id) in (((select min(id) from participants), (select max(id) from participants)), ((select max(id) from participants), (select min(id) from participants)))",
          )),
      },
    });
    expect(report.error).to.equal(`the restore does not match the manifest of set ${set.id}: content of participants: values differ in email`);
    await expectScratchGone();
  });

  it("a set made before fingerprints still drills, verified by row counts and file hashes, with a note", async () => {
    const manifest = structuredClone(set.manifest!);
    delete manifest.databases["db-plum"].fingerprint;
    await ctx.sets.update({ manifest }, { where: { id: set.id } });
    const report = await restoreDrill({ ctx, setId: set.id, startedBy: "test" }).finally(() =>
      ctx.sets.update({ manifest: set.manifest }, { where: { id: set.id } }),
    );
    expect(report).to.include({ passed: true, verified: true });
    expect(report.checks.filter((c) => c.name.startsWith("content of"))).to.deep.equal([
      {
        name: "content of the product tables",
        passed: true,
        detail: "the manifest has no fingerprints (a set made before they were recorded): row counts and file hashes verified only",
      },
    ]);
    await expectScratchGone();
  });

  it("fails when a ledger entry in the set itself is wrong (verified: true, as backed up): the ledger suite names the participant", async () => {
    // The damage is in production before the set is made: the set holds it, the restore matches its manifest.
    const damage =
      "update ledger_entries set points = 1 where kind = 'award' and participant_id in (select participant_id from ledger_entries where kind = 'redemption')";
    await env.product.transaction(async (transaction) => {
      await env.product.query("alter table ledger_entries disable trigger user", { transaction });
      await env.product.query(damage, { transaction });
      await env.product.query("alter table ledger_entries enable trigger user", { transaction });
    });
    const damaged = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    const report = await restoreDrill({ ctx, setId: damaged.id, startedBy: "test" });

    expect(report).to.include({ passed: false, verified: true });
    expect(report.checks.filter((c) => c.name.startsWith("content of")).every((c) => c.passed)).to.equal(true);
    expect(report.error).to.match(/^suites failed on the restored database: ledger \(no balance is below zero: 1 found: participant \d+ has -99\)$/);
    await expectScratchGone();
  });
});
