import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { releaseDataChanges } from "../../appliance/releases/migration-data-changes.ts";
import { stagingDatabase } from "../../appliance/upgrade/staging-database.ts";
import { dataGateCheck, stageStep, type GateHost, type StageHost } from "../../appliance/upgrade/upgrade-steps.ts";
import type { Upgrade, UpgradeReport } from "../../appliance/upgrade/upgrade-journal.ts";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import type { BackupContext } from "../../backup/backup-context.ts";
import { backupOperationsFor } from "../../backup/jobs/backup-operations-impl.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { buildItem, buildMerchant, buildParticipant, buildProgramme } from "../support/factories.ts";
import { addMigration, lowerCasedMerchantNames, SILENT_DAMAGE, type TreePatch } from "../support/release-patches.ts";
import { databaseNames, productContextOn, seedProductData } from "../support/restore-fixtures.ts";
import { runTempDir } from "../support/run-dir.ts";

/**
 * The data-diff gate at its seam, on real databases: a real pre-upgrade set (fingerprints in its manifest),
 * restored into a staging database through the real restore-copy operation, migrated by node-pg-migrate with a
 * test release's migrations, fingerprinted, and judged against the declaration the real bundle builder derives
 * from those migrations; on a refusal the set is restored once more to compare rows. Four silent damages, each
 * in another table, are refused naming table, column, rows and keys; declared changes pass and are shown.
 */
describe("upgrade data-diff gate on real databases (stage + validate's gate)", function () {
  this.timeout(180_000);
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  let set: BackupSet;
  let n = 0;

  before(async () => {
    env = await startBackupEnv();
    ctx = env.ctx;
    const product = productContextOn(env.product);
    await seedProductData(product, ctx.filesDir);
    for (let i = 0; i < 6; i++) await buildMerchant(product);
    const { merchant } = await buildMerchant(product);
    for (const pointsCost of [120, 445, 50, 300]) await buildItem(product, merchant.id, { pointsCost });
    for (let i = 0; i < 12; i++) await buildProgramme(product);
    for (let i = 0; i < 10; i++) await buildParticipant(product);
    set = await backupSetCreator({ ctx, kind: "pre-upgrade", startedBy: "test" });
    expect(set.manifest!.databases["db-plum"].fingerprint?.tables.merchants.rows).to.equal(8);
  });
  after(() => env.stop());

  const ids = async (sql: string) => (await env.product.query(sql))[0].map((r) => `id=${(r as { id: number }).id}`);

  /** A release's migrations folder: this tree's and the patch's, with lib/ beside it (migrations import lib/). */
  function releaseTree(patch: TreePatch): string {
    const tree = runTempDir("plum-gate-tree-");
    mkdirSync(path.join(tree, "migrations"));
    for (const name of readdirSync(path.join(APP_ROOT, "migrations")))
      if (statSync(path.join(APP_ROOT, "migrations", name)).isFile())
        copyFileSync(path.join(APP_ROOT, "migrations", name), path.join(tree, "migrations", name));
    symlinkSync(path.join(APP_ROOT, "lib"), path.join(tree, "lib"));
    symlinkSync(path.join(APP_ROOT, "node_modules"), path.join(tree, "node_modules"));
    patch(tree);
    return tree;
  }

  /** stage then the gate, as the upgrade runs them, for release 0.9.0 made of `patch`; the report, or the refusal. */
  async function stageAndJudge(patch: TreePatch): Promise<{ report: UpgradeReport; refusal?: string; staging: string }> {
    const tree = releaseTree(patch);
    const staging = `${ctx.databases.product}_staging${++n}`;
    const ops = backupOperationsFor(ctx);
    const database = stagingDatabase({
      pg: ctx.pg,
      database: staging,
      scratch: `${staging}_before`,
      roles: ctx.config.database.roles,
      runJob: async (request, actor) => {
        if (request.kind !== "restore-copy") throw new Error(`the gate asks for restore-copy jobs only, not ${request.kind}`);
        return ops.restoreCopy(request, actor, () => undefined);
      },
    });
    const dataChanges = await releaseDataChanges(path.join(tree, "migrations"));
    const host: StageHost & GateHost = {
      log: ctx.log,
      releases: { facts: (version) => ({ version, schemaVersion: "?", minimumVersion: "0.0.0", suites: [], dataChanges }) },
      staging: database,
      commands: {
        async migrate() {
          const started = Date.now();
          const ran = await migrate({ clientConfig: clientConfig(ctx.pg, staging), dir: path.join(tree, "migrations") });
          return { ran, schemaVersion: ran.at(-1) ?? "none", seconds: (Date.now() - started) / 1000 };
        },
      },
    };
    const u = { id: n, fromVersion: "0.1.0", toVersion: "0.9.0", snapshotSetId: set.id } as Upgrade;
    const report: UpgradeReport = { steps: {} };
    try {
      await stageStep(host, u, report);
      const refusal = await dataGateCheck(host, u, report).then(
        () => undefined,
        (err: Error) => err.message,
      );
      expect(await databaseNames(ctx.pg, `${staging}\\_before`), "the gate's scratch copy is dropped").to.deep.equal([]);
      return { report, refusal, staging };
    } finally {
      await database.drop();
      rmSync(tree, { recursive: true, force: true });
    }
  }

  const refused = (findings: string) => `0.9.0's migrations changed data they do not declare: ${findings}`;

  it("refuses amounts rounded in a DO block: catalogue_items.points_cost, rows and keys named", async () => {
    const changed = await ids("select id from catalogue_items where points_cost % 100 <> 0 order by id");
    expect(changed).to.have.length(4);
    const { refusal, report } = await stageAndJudge(SILENT_DAMAGE.roundedItemCosts);
    expect(refusal).to.equal(refused(`catalogue_items.points_cost: 4 rows changed (e.g. ${changed.join(", ")})`));
    expect(report.dataGate).to.deep.include({ verdict: "refused", declaredBy: "manifest", migrations: ["1732000000800_item-costs"] });
    expect(report.dataGate!.unread).to.have.length(1);
    expect(report.dataGate!.unread![0]).to.match(/^1732000000800_item-costs: do \$\$ begin update catalogue_items/);
    expect(report.dataGate!.before).to.deep.include({ from: "restore" });
    expect(report.dataGate!.rowsSeconds).to.be.greaterThan(0);
  });

  it("refuses rows deleted by a function the migration calls: programmes, how many and which", async () => {
    const deleted = await ids("select id from programmes where id % 3 = 0 order by id");
    expect(deleted.length).to.be.within(2, 5);
    const { refusal } = await stageAndJudge(SILENT_DAMAGE.prunedProgrammes);
    expect(refusal).to.equal(refused(`programmes: ${deleted.length} rows deleted (e.g. ${deleted.join(", ")})`));
  });

  it("refuses two values swapped between rows (every count and value set unchanged): participants.email", async () => {
    const [first, last] = await ids("(select id from participants order by id limit 1) union all (select id from participants order by id desc limit 1)");
    const { refusal, report } = await stageAndJudge(SILENT_DAMAGE.swappedEmails);
    expect(refusal).to.equal(refused(`participants.email: 2 rows changed (e.g. ${first}, ${last})`));
    expect(report.dataGate!.undeclared).to.deep.equal([
      { table: "participants", column: "email", kind: "values-changed", what: "values changed", rows: 2, examples: [first, last] },
    ]);
  });

  it("refuses names lower-cased by a trigger a harmless-looking UPDATE fires: merchants.name, beside the derived contact_email", async () => {
    const all = await ids("select id from merchants order by id");
    expect(all).to.have.length(8);
    const { refusal, report } = await stageAndJudge(SILENT_DAMAGE.lowerCasedMerchantNames);
    expect(refusal).to.equal(refused(`merchants.name: 8 rows changed (e.g. ${all.slice(0, 5).join(", ")})`));
    expect(report.dataGate!.declared!.map((d) => [d.change, d.table, d.column, d.source, d.measured])).to.deep.equal([
      ["column-rewritten", "merchants", "contact_email", "derived", "no value changed"],
    ]);
  });

  it("passes the same change when the migration states it, and shows it with what was measured", async () => {
    const { refusal, report } = await stageAndJudge(lowerCasedMerchantNames(true));
    expect(refusal).to.equal(undefined);
    expect(report.dataGate).to.deep.include({ verdict: "passed", undeclared: [] });
    expect(report.dataGate!.declared!.map((d) => [d.change, d.table, d.column, d.source, d.measured, d.note])).to.deep.equal([
      ["column-rewritten", "merchants", "contact_email", "derived", "no value changed", undefined],
      ["column-rewritten", "merchants", "name", "stated", "values changed", "merchant names are kept in lower case"],
    ]);
    expect(report.dataGate!.rowsSeconds, "no row comparison when nothing is refused").to.equal(undefined);
  });

  it("passes a plain UPDATE and a new column, declared by the builder from the SQL itself", async () => {
    const { refusal, report } = await stageAndJudge(
      addMigration(
        "1732000000800_departments",
        "update participants set department = upper(department); alter table vouchers add column channel text not null default 'web'",
        "select 1",
      ),
    );
    expect(refusal).to.equal(undefined);
    expect(report.dataGate!.declared!.map((d) => [d.change, `${d.table}.${d.column}`, d.measured])).to.deep.equal([
      ["column-rewritten", "participants.department", "values changed"],
      ["column-added", "vouchers.channel", "added, 1 non-null value"],
    ]);
  });
});
