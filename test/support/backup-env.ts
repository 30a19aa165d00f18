import { mkdirSync, readdirSync } from "node:fs";
import path from "node:path";
import type { Sequelize } from "sequelize";
import { backupContextFor, type BackupContext, type ProductionRelease } from "../../backup/backup-context.ts";
import { loadConfig } from "../../lib/config.ts";
import { prepareHome } from "../../lib/home.ts";
import { createLogger } from "../../lib/logger.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { APP_VERSION, expectedSchemaVersion, PRODUCT_MIGRATIONS_DIR } from "../../lib/version.ts";
import { removeHome, tempHome } from "./agent-process.ts";
import { freshDatabases, type FreshDatabases } from "./databases.ts";

/**
 * The locks restic honours in the repository at `location`: files of `locks/` named by their 64-hex id. A restic
 * killed while it writes one leaves a temporary `<id>-tmp-<n>` beside them, which restic never reads as a lock.
 */
export function resticLocks(location: string): string[] {
  return readdirSync(path.join(location, "locks")).filter((name) => /^[0-9a-f]{64}$/.test(name));
}

/**
 * A backup context on fresh migrated databases of the test cluster, with a temp PLUM_HOME (secrets made),
 * a primary repository under it and, when asked, a secondary one (a second local path: "the second site").
 */
export async function startBackupEnv(
  opts: { secondary?: boolean; production?: ProductionRelease; env?: Record<string, string> } = {},
): Promise<{ ctx: BackupContext; dbs: FreshDatabases; home: string; product: Sequelize; stop(): Promise<void> }> {
  const dbs = await freshDatabases({ migrated: true });
  const home = tempHome();
  const env: Record<string, string> = { PLUM_HOME: home, ...dbs.env, ...opts.env };
  if (opts.secondary) env.PLUM_BACKUP_SECONDARY = path.join(home, "site-b", "repo");
  prepareHome(env);
  const config = loadConfig(env);
  mkdirSync(path.join(home, "files"), { recursive: true });
  const ops = openSequelize(clientConfig(dbs.server, dbs.ops), { poolMax: 5 });
  const product = openSequelize(clientConfig(dbs.server, dbs.product), { poolMax: 5 });
  const ctx = backupContextFor({
    config,
    log: createLogger("test-backup", { level: process.env.PLUM_TEST_LOG_LEVEL ?? "silent" }),
    pg: dbs.server,
    opsSequelize: ops,
    // Production runs this tree's release unless a suite says otherwise (as a CLI command on a stopped appliance reads it).
    production: async () => opts.production ?? { version: APP_VERSION, schemaVersion: expectedSchemaVersion(PRODUCT_MIGRATIONS_DIR) },
  });
  return {
    ctx,
    dbs,
    home,
    product,
    async stop() {
      await ops.close();
      await product.close();
      await dbs.drop();
      removeHome(home);
    },
  };
}
