import type { PlumConfig } from "../lib/config.ts";
import { createLogger } from "../lib/logger.ts";
import { backupContextFor, type BackupContext } from "../backup/backup-context.ts";
import { withOpsDatabase, type OpsDatabase } from "../appliance/ops-database.ts";

/** The backup agent's context as a CLI command sees it (over plum_ops, opened and closed around `work`). */
export function withBackupContext<T>(config: PlumConfig, work: (ctx: BackupContext, db: OpsDatabase) => Promise<T>): Promise<T> {
  return withOpsDatabase(config, async (db) => {
    const ctx = backupContextFor({
      config,
      log: createLogger("plumctl", { level: "warn" }),
      pg: db.server,
      opsSequelize: db.sequelize,
      // Loaded when a set is taken: it reaches the release store (and the engine client), which a `backup list` never needs.
      production: async () => (await import("../appliance/releases/production-release.ts")).productionReleaseAtRest(config, db.sequelize),
    });
    try {
      return await work(ctx, db);
    } finally {
      await ctx.appendOnly?.stop(); // the append-only servers this command started (backup.appendOnly)
    }
  });
}
