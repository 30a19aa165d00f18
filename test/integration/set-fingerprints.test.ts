import { expect } from "chai";
import pg from "pg";
import type { BackupContext } from "../../backup/backup-context.ts";
import { scratchRestorer } from "../../backup/restore/scratch-restorer.ts";
import { dropDatabase } from "../../backup/restore/whole-databases.ts";
import { Restic } from "../../backup/restic/restic.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { fingerprintDatabase } from "../../lib/db/table-fingerprints.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { productContextOn, seedProductData } from "../support/restore-fixtures.ts";

/**
 * Content in the set manifest: the product tables' fingerprints are taken in the transaction whose exported
 * snapshot pg_dump dumps, so they match the dumped rows even while production writes on; a restore verifies
 * content against them (a tampered row with an unchanged count fails), and an older manifest still restores.
 */
describe("backup set fingerprints (manifest content, verified on restore)", function () {
  this.timeout(180_000);
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  const restic = new Restic();
  let n = 0;

  before(async () => {
    env = await startBackupEnv();
    ctx = env.ctx;
    await seedProductData(productContextOn(env.product), ctx.filesDir);
  });
  after(() => env.stop());

  async function restoreScratch(setId: string, tamper?: string) {
    const set = (await ctx.sets.findByPk(setId))!;
    const database = `${ctx.databases.product}_fp${++n}`;
    try {
      return await scratchRestorer({
        ctx,
        restic,
        set,
        repo: ctx.repos.primary,
        target: { database },
        beforeVerify: async () => {
          if (tamper) {
            const c = new pg.Client(clientConfig(ctx.pg, database));
            await c.connect();
            await c.query(tamper).finally(() => c.end());
          }
        },
      });
    } finally {
      await dropDatabase(ctx.pg, database);
    }
  }

  it("records the dumped snapshot's content, not what production holds once writes went on during the dump", async () => {
    let stop = false;
    let written = 0;
    const writer = (async () => {
      while (!stop) {
        await env.product.query("insert into programmes (name, kind) values (:name, 'loyalty')", { replacements: { name: `during-${++written}` } });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" }).finally(async () => {
      stop = true;
      await writer;
    });
    const manifest = set.manifest!;
    const recorded = manifest.databases["db-plum"].fingerprint!;
    expect(recorded.tables.programmes.rows).to.equal(manifest.databases["db-plum"].tables.programmes);
    expect(Object.keys(recorded.tables)).to.not.include("pgmigrations");
    const live = (await fingerprintDatabase(ctx.pg, ctx.databases.product)).fingerprint;
    expect(live.tables.programmes.rows, "the writer went on after the snapshot").to.be.greaterThan(recorded.tables.programmes.rows);

    const restored = await restoreScratch(set.id);
    const content = restored.checks.filter((c) => c.name.startsWith("content of"));
    expect(content.map((c) => c.name)).to.include.members(["content of programmes", "content of participants", "content of ledger_entries"]);
    expect(content.filter((c) => !c.passed)).to.deep.equal([]);
    expect(restored.fingerprint!.fingerprint).to.deep.equal(recorded);
    expect(restored.fingerprint!.seconds).to.be.greaterThan(0);
  });

  it("a restored row changed with its count unchanged fails its table's content check, naming the column", async () => {
    const set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    const restored = await restoreScratch(set.id, "update participants set name = name || '.' where id = (select min(id) from participants)");
    const failing = restored.checks.filter((c) => !c.passed);
    expect(failing).to.deep.equal([{ name: "content of participants", passed: false, detail: "values differ in name" }]);
    expect(restored.checks.find((c) => c.name === "rows in participants")?.passed).to.equal(true);
  });

  it("an older manifest without fingerprints restores, with a note, and measures nothing it cannot compare", async () => {
    const set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    const manifest = structuredClone(set.manifest!);
    delete manifest.databases["db-plum"].fingerprint;
    await ctx.sets.update({ manifest }, { where: { id: set.id } });
    const restored = await restoreScratch(set.id, "update participants set name = name || '.' where id = (select min(id) from participants)");
    expect(
      restored.checks.filter((c) => !c.passed),
      "only counts are checked",
    ).to.deep.equal([]);
    expect(restored.checks.filter((c) => c.name.startsWith("content of"))).to.deep.equal([
      {
        name: "content of the product tables",
        passed: true,
        detail: "the manifest has no fingerprints (a set made before they were recorded): row counts and file hashes verified only",
      },
    ]);
    expect(restored.fingerprint).to.equal(undefined);
  });
});
