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

  it("fails when a restored ledger entry was changed (same row count): the ledger suite names the participant", async () => {
    const report = await restoreDrill({
      ctx,
      startedBy: "test",
      hooks: {
        afterRestore: async ({ sequelize }) => {
          await sequelize.query("alter table ledger_entries disable trigger user");
          await sequelize.query(
            "update ledger_entries set points = 1 where kind = 'award' and participant_id in (select participant_id from ledger_entries where kind = 'redemption')",
          );
        },
      },
    });

    expect(report).to.include({ passed: false, verified: true });
    expect(report.error).to.match(/^suites failed on the restored database: ledger \(no balance is below zero: 1 found: participant \d+ has -99\)$/);
    await expectScratchGone();
  });
});
