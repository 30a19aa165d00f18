import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import type { BackupContext } from "../../backup/backup-context.ts";
import { setRestorer, type ProductInstances } from "../../backup/restore/set-restorer.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { setCopier } from "../../backup/sets/set-copier.ts";
import type { ProductContext } from "../../product/product-context.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { buildParticipant } from "../support/factories.ts";
import { databaseNames, fileDigests, productContextOn, seedProductData, tableDigests } from "../support/restore-fixtures.ts";

describe("restore of a backup set over production (new database, verified, swapped by rename)", () => {
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  let product: ProductContext;
  let set: BackupSet;
  let tablesAtSet: Awaited<ReturnType<typeof tableDigests>>;
  let filesAtSet: Record<string, string>;

  before(async () => {
    env = await startBackupEnv({ secondary: true });
    ctx = env.ctx;
    product = productContextOn(env.product);
    await seedProductData(product, ctx.filesDir);
    set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    tablesAtSet = await tableDigests(ctx.pg, ctx.databases.product);
    filesAtSet = await fileDigests(ctx.filesDir);
  });
  after(() => env.stop());

  /** What goes wrong after a set: rows deleted and changed (past the append-only trigger), rows added, files deleted, changed and added. */
  async function damage(): Promise<void> {
    await env.product.query("truncate ledger_entries, vouchers");
    await env.product.query("delete from catalogue_items where id not in (select item_id from vouchers)");
    await env.product.query("update participants set name = 'overwritten'");
    await buildParticipant(product);
    rmSync(path.join(ctx.filesDir, "terms.txt"), { force: true });
    writeFileSync(path.join(ctx.filesDir, "imports", "hris-2024-11.csv"), "employee_id,name\n");
    writeFileSync(path.join(ctx.filesDir, "written-later.txt"), "not in the set\n");
  }

  function recordingInstances(opts: { failFirstStart?: boolean } = {}): ProductInstances & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      stopProduct: async () => void calls.push("stop"),
      startProduct: async () => {
        calls.push("start");
        if (opts.failFirstStart && calls.filter((c) => c === "start").length === 1) throw new Error("the product did not become ready within 60 s");
      },
    };
  }

  async function expectNothingLeftBehind(): Promise<void> {
    expect(await databaseNames(ctx.pg, `${ctx.databases.product}\\_%`)).to.deep.equal([]);
    const filesParent = path.dirname(ctx.filesDir);
    expect(readdirSync(filesParent).filter((name) => name.startsWith(`${path.basename(ctx.filesDir)}.`))).to.deep.equal([]);
  }

  it("restores damaged rows and files to exactly the set, behind a pre-restore set, stopping and starting the product once", async () => {
    await damage();
    expect(await tableDigests(ctx.pg, ctx.databases.product)).to.not.deep.equal(tablesAtSet);
    const instances = recordingInstances();

    const report = await setRestorer({ ctx, setId: set.id, parts: { db: true, files: true }, from: "primary", startedBy: "test", instances });

    expect(instances.calls).to.deep.equal(["stop", "start"]);
    expect(await tableDigests(ctx.pg, ctx.databases.product)).to.deep.equal(tablesAtSet);
    expect(await fileDigests(ctx.filesDir)).to.deep.equal(filesAtSet);
    expect(report).to.include({ setId: set.id, from: "primary", primaryInitialised: false });
    expect(report.checks.every((c) => c.passed)).to.equal(true);
    const preRestore = await ctx.sets.findByPk(report.preRestoreSetId);
    expect(preRestore).to.include({ kind: "pre-restore", status: "succeeded" });
    expect(preRestore!.manifest!.databases["db-plum"].tables.participants).to.equal(tablesAtSet.participants.rows + 1); // it holds the damaged state
    const [evidence] = await ctx.evidence.list({ kind: "restore", limit: 1 });
    expect(evidence).to.include({ outcome: "success", set_id: set.id, repository: "primary" });
    expect(evidence.detail).to.deep.include({ from: "primary", parts: { db: true, files: true }, setId: set.id, preRestoreSetId: report.preRestoreSetId });
    expect(evidence.detail.durationSeconds).to.be.greaterThan(0);
    await expectNothingLeftBehind();
  });

  it("aborts before the swap when the restored data does not match the manifest: production untouched, the new database dropped", async () => {
    await damage();
    const damaged = await tableDigests(ctx.pg, ctx.databases.product);
    const damagedFiles = await fileDigests(ctx.filesDir);
    const manifest = structuredClone(set.manifest!);
    manifest.databases["db-plum"].tables.merchants += 1;
    await ctx.sets.update({ manifest }, { where: { id: set.id } });
    const instances = recordingInstances();

    const failure = await setRestorer({ ctx, setId: set.id, parts: { db: true, files: true }, from: "primary", startedBy: "test", instances })
      .catch((err: Error) => err)
      .finally(() => ctx.sets.update({ manifest: set.manifest }, { where: { id: set.id } }));

    expect((failure as Error).message).to.match(/does not match its manifest, so nothing was swapped: rows in merchants: 1 restored, the manifest says 2$/);
    expect(instances.calls).to.deep.equal([]);
    expect(await tableDigests(ctx.pg, ctx.databases.product)).to.deep.equal(damaged);
    expect(await fileDigests(ctx.filesDir)).to.deep.equal(damagedFiles);
    const [evidence] = await ctx.evidence.list({ kind: "restore", limit: 1 });
    expect(evidence).to.include({ outcome: "failure", set_id: set.id });
    await expectNothingLeftBehind();
  });

  it("swaps back when the product does not start on the restored data, and starts it on what it had", async () => {
    const before = await tableDigests(ctx.pg, ctx.databases.product);
    const filesBefore = await fileDigests(ctx.filesDir);
    const instances = recordingInstances({ failFirstStart: true });

    const failure = await setRestorer({ ctx, setId: set.id, parts: { db: true, files: true }, from: "primary", startedBy: "test", instances }).catch(
      (err: Error) => err,
    );

    expect((failure as Error).message).to.equal("the product did not become ready within 60 s");
    expect(instances.calls).to.deep.equal(["stop", "start", "start"]);
    expect(await tableDigests(ctx.pg, ctx.databases.product)).to.deep.equal(before);
    expect(await fileDigests(ctx.filesDir)).to.deep.equal(filesBefore);
    await expectNothingLeftBehind();
  });

  it("restores from the secondary when the primary repository is gone, into a new primary that holds the pre-restore set", async () => {
    await setCopier(ctx, { setId: set.id });
    rmSync(ctx.repos.primary.location, { recursive: true, force: true });
    await damage();
    const instances = recordingInstances();

    const report = await setRestorer({ ctx, setId: set.id, parts: { db: true, files: true }, from: "secondary", startedBy: "test", instances });

    expect(report).to.include({ from: "secondary", primaryInitialised: true });
    expect(report.notes.join("\n")).to.match(/primary repository .* was missing: a new, empty one was initialised/);
    expect(instances.calls).to.deep.equal(["stop", "start"]);
    expect(await tableDigests(ctx.pg, ctx.databases.product)).to.deep.equal(tablesAtSet);
    expect(await fileDigests(ctx.filesDir)).to.deep.equal(filesAtSet);
    expect(existsSync(path.join(ctx.repos.primary.location, "config"))).to.equal(true);
    expect(await ctx.sets.findByPk(report.preRestoreSetId)).to.include({ kind: "pre-restore", status: "succeeded" });
    await expectNothingLeftBehind();
  });
});
