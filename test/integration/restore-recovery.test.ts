import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import type { BackupContext } from "../../backup/backup-context.ts";
import { RestoreJournal } from "../../backup/restore/restore-journal.ts";
import { assertSafeToCreateProductDatabase, restoreRecovery } from "../../backup/restore/restore-recovery.ts";
import { createEmptyDatabase, dropDatabase, renameDatabases } from "../../backup/restore/whole-databases.ts";
import { Restic } from "../../backup/restic/restic.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { holdBackupWork } from "../../backup/work-lock.ts";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { plumctl } from "../support/plumctl.ts";
import { databaseNames, productContextOn, seedProductData, tableDigests } from "../support/restore-fixtures.ts";

/** Recovery at start beyond the journal's own restores: sets left running, leftovers, and what it must refuse. */
describe("restore recovery at start: sets left running, leftovers, and the guard before an empty product database", () => {
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  const restic = new Restic();

  before(async () => {
    env = await startBackupEnv();
    ctx = env.ctx;
    await seedProductData(productContextOn(env.product), ctx.filesDir);
  });
  after(() => env.stop());

  /** A set as a crash leaves it: its row still `running`, no manifest or snapshot ids recorded. */
  async function leftRunning(set: BackupSet): Promise<void> {
    await ctx.sets.update({ status: "running", finishedAt: null, manifest: null, primarySnapshots: {} }, { where: { id: set.id } });
  }

  it("marks a set left running with every part and its manifest in the repository succeeded (a plum_ops restored from its own set)", async () => {
    const set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    const manifest = set.manifest!;
    const snapshots = set.primarySnapshots;
    await leftRunning(set);

    const recovery = await restoreRecovery({ ctx, by: "test restart", restic });

    expect(recovery.sets).to.deep.equal([`backup set ${set.id} was left unfinished with every part in the repository: marked succeeded`]);
    const after = (await ctx.sets.findByPk(set.id))!;
    expect(after.status).to.equal("succeeded");
    expect(after.primarySnapshots).to.deep.equal(snapshots);
    expect(after.manifest).to.deep.equal(manifest);
    const [evidence] = await ctx.evidence.list({ kind: "backup", limit: 1 });
    expect(evidence).to.include({ outcome: "success", set_id: set.id });
    expect(evidence.detail.reconciled).to.match(/^test restart: the set was found unfinished with every part and its manifest/);
  });

  it("marks a set left running with a part missing failed and forgets the snapshots it left", async () => {
    const set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    await restic.forget(ctx.repos.primary, [set.primarySnapshots.files!]); // it died before the files were stored
    await leftRunning(set);

    const recovery = await restoreRecovery({ ctx, by: "test restart", restic });

    expect(recovery.sets).to.deep.equal([`backup set ${set.id} was left unfinished: marked failed, 2 partial snapshot(s) forgotten`]);
    const after = (await ctx.sets.findByPk(set.id))!;
    expect(after.status).to.equal("failed");
    expect(after.error).to.equal(
      "interrupted: the process making this set stopped before it finished (found unfinished by test restart); its 2 partial snapshot(s) were forgotten",
    );
    expect(await restic.snapshots(ctx.repos.primary, { tags: [`set:${set.id}`] })).to.deep.equal([]);
    const [evidence] = await ctx.evidence.list({ kind: "backup", limit: 1 });
    expect(evidence).to.include({ outcome: "failure", set_id: set.id });
  });

  it("leaves a set alone while another process holds the backup work lock (that process is making it)", async () => {
    const set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    await leftRunning(set);
    const work = await holdBackupWork(ctx.pg, ctx.databases.ops);
    try {
      const recovery = await restoreRecovery({ ctx, by: "test restart", restic });
      expect(recovery.notes).to.deep.equal(["another process is running a backup job (it holds the backup work lock): its restores and sets are left to it"]);
      expect((await ctx.sets.findByPk(set.id))!.status).to.equal("running");
    } finally {
      await work.release();
    }
    await restoreRecovery({ ctx, by: "test restart", restic });
    expect((await ctx.sets.findByPk(set.id))!.status).to.equal("succeeded");
  });

  it("drops leftover copies and folders, and keeps what a restore kept from before when no journal entry explains it", async () => {
    const product = ctx.databases.product;
    for (const name of ["restore_leftover", "drill_leftover", "before_restore_unknown"]) await createEmptyDatabase(ctx.pg, `${product}_${name}`);
    mkdirSync(`${ctx.filesDir}.restore-leftover/some/where`, { recursive: true });
    mkdirSync(`${ctx.filesDir}.before-restore-unknown`, { recursive: true });
    writeFileSync(`${ctx.filesDir}.before-restore-unknown/only-copy.txt`, "maybe the only copy\n");
    mkdirSync(path.join(ctx.workDir, "drill-leftover"), { recursive: true });

    const recovery = await restoreRecovery({ ctx, by: "test restart", restic });

    expect(recovery.debris).to.deep.equal([
      `dropped leftover database ${product}_restore_leftover`,
      `dropped leftover database ${product}_drill_leftover`,
      `removed leftover folder ${ctx.filesDir}.restore-leftover`,
      `removed leftover drill folder ${path.join(ctx.workDir, "drill-leftover")}`,
    ]);
    expect(recovery.notes).to.deep.equal([
      `database ${product}_before_restore_unknown holds data from before a restore that no journal entry explains: it is kept; drop it when it is not needed`,
      `folder ${ctx.filesDir}.before-restore-unknown holds files from before a restore that no journal entry explains: it is kept; remove it when it is not needed`,
    ]);
    expect(await databaseNames(ctx.pg, `${product}\\_%`)).to.deep.equal([`${product}_before_restore_unknown`]);
    expect(readdirSync(path.dirname(ctx.filesDir)).filter((n) => n.startsWith(`${path.basename(ctx.filesDir)}.`))).to.deep.equal([
      `${path.basename(ctx.filesDir)}.before-restore-unknown`,
    ]);
  });

  it("refuses to let an empty product database be made while the data from before a restore is parked; plumctl restore recover --use puts it back", async () => {
    const product = ctx.databases.product;
    await dropDatabase(ctx.pg, `${product}_before_restore_unknown`); // the previous test's
    const before = await tableDigests(ctx.pg, product);
    // What a restore of the old two-step swap left when killed between its renames: no `plum`, the data parked.
    await renameDatabases(ctx.pg, [[product, `${product}_before_restore_20261201120000`]]);

    const refused = await assertSafeToCreateProductDatabase(ctx).catch((err: Error & { hint?: string }) => err);

    expect((refused as Error).message).to.equal(
      `database "${product}" does not exist and "${product}_before_restore_20261201120000" holds the product's data from before a restore that did not finish, so the agent does not create an empty "${product}"`,
    );
    expect((refused as { hint?: string }).hint).to.equal(
      `put the data back with: plumctl restore recover --use ${product}_before_restore_20261201120000 (or in psql: ALTER DATABASE "${product}_before_restore_20261201120000" RENAME TO "${product}";), then start the agent again`,
    );
    // Nothing was dropped meanwhile: recovery leaves every database alone while the product database is missing.
    await restoreRecovery({ ctx, by: "test restart", restic });
    expect(await databaseNames(ctx.pg, `${product}\\_before\\_restore\\_%`)).to.deep.equal([`${product}_before_restore_20261201120000`]);

    const cli = { ...env.dbs.env, PLUM_HOME: env.home };
    const wrong = await plumctl(["restore", "recover", "--use", "postgres"], cli);
    expect(wrong.code).to.equal(1);
    expect(wrong.stderr).to.include(
      `error: --use takes a database a restore kept or made (${product}_before_restore_… or ${product}_restore_…), not "postgres"`,
    );
    const recovered = await plumctl(["restore", "recover", "--use", `${product}_before_restore_20261201120000`], cli, 120_000);
    expect(recovered.code, recovered.stderr).to.equal(0);
    expect(recovered.stdout.split("\n")[0]).to.equal(`renamed database ${product}_before_restore_20261201120000 to ${product}`);
    await assertSafeToCreateProductDatabase(ctx);
    expect(await tableDigests(ctx.pg, product)).to.deep.equal(before);
    const [row] = await new AuditLog(ctx.opsSequelize).list({ action: "backup.restore.recover", limit: 1 });
    expect(row).to.deep.include({ actor: "cli", outcome: "success" });
    expect(row.detail.use).to.equal(`${product}_before_restore_20261201120000`);
    expect((await new RestoreJournal(ctx.opsSequelize).unfinished()).length).to.equal(0);
  });
});
