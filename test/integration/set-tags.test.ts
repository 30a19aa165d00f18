import { expect } from "chai";
import pg from "pg";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import type { BackupContext } from "../../backup/backup-context.ts";
import { SET_PARTS, type SetKind } from "../../backup/backup-types.ts";
import { backupOperationsFor } from "../../backup/jobs/backup-operations-impl.ts";
import { Restic } from "../../backup/restic/restic.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { appliedSchemaVersion } from "../../lib/db/migrate.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { productContextOn, seedProductData } from "../support/restore-fixtures.ts";

/** A release newer than this tree's agent, as production runs after an upgrade the agent itself never had. */
const PRODUCTION = { version: "7.3.0", schemaVersion: "1790000000000_what-the-release-declares" };

/**
 * Sets say what they hold: the release production ran and the schema of the dumped database, whoever made
 * them (the schedule, an admin, an upgrade's snapshot, a restore's pre-restore set), never the agent's version.
 */
describe("backup sets are tagged with the release production runs and its schema, not the agent's", function () {
  this.timeout(180_000);
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  let schema: string;
  const restic = new Restic();

  before(async () => {
    expect(PRODUCTION.version).to.not.equal(APP_VERSION);
    env = await startBackupEnv({ production: PRODUCTION });
    ctx = env.ctx;
    await seedProductData(productContextOn(env.product), ctx.filesDir);
    const client = new pg.Client(clientConfig(ctx.pg, ctx.databases.product));
    await client.connect();
    schema = await appliedSchemaVersion(client).finally(() => client.end());
    expect(schema).to.match(/^\d+_/);
  });
  after(() => env.stop());

  async function expectTaggedWithProduction(set: BackupSet, kind: SetKind): Promise<void> {
    expect(set.status, set.error ?? "").to.equal("succeeded");
    expect({ kind: set.kind, appVersion: set.appVersion, schemaVersion: set.schemaVersion }).to.deep.equal({
      kind,
      appVersion: PRODUCTION.version,
      schemaVersion: schema, // the dumped database's own, read in the dump's snapshot
    });
    expect(set.manifest).to.deep.include({ setId: set.id, kind, appVersion: PRODUCTION.version, schemaVersion: schema });
    const snapshots = await restic.snapshots(ctx.repos.primary, { tags: [`set:${set.id}`] });
    expect(snapshots.map((s) => s.tags.find((t) => t.startsWith("part:"))).sort()).to.deep.equal(SET_PARTS.map((p) => `part:${p}`).sort());
    for (const s of snapshots) {
      expect(s.tags, `${kind} ${s.tags.join(",")}`).to.include.members([`kind:${kind}`, `app:${PRODUCTION.version}`, `schema:${schema}`]);
      expect(s.tags).to.not.include(`app:${APP_VERSION}`);
    }
  }

  it("scheduled, manual and pre-upgrade sets", async () => {
    const operations = backupOperationsFor(ctx);
    for (const kind of ["scheduled", "manual", "pre-upgrade"] as const)
      await expectTaggedWithProduction(await operations.backup(kind, "test", () => undefined), kind);
  });

  it("the pre-restore set a restore takes first", async () => {
    const operations = backupOperationsFor(ctx);
    const source = await operations.backup("manual", "test", () => undefined);
    await operations.restore({ setId: source.id, db: true, files: true, from: "primary" }, "test", () => undefined);
    const preRestore = await ctx.sets.findOne({ where: { kind: "pre-restore" }, order: [["startedAt", "DESC"]] });
    expect(preRestore, "a pre-restore set").to.not.equal(null);
    await expectTaggedWithProduction(preRestore!, "pre-restore");
  });
});
