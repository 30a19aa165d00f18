/**
 * A restore copy (what the upgrade's stage step asks the agent for: a set's product database verified into
 * `<product>_staging`) in a process of its own, for the crash tests to SIGKILL; no `plumctl` command makes
 * one. Works on the PLUM_HOME and databases its environment names. Argv: <set id>.
 */
import { productionReleaseAtRest } from "../../appliance/releases/production-release.ts";
import { backupContextFor } from "../../backup/backup-context.ts";
import { copyRestorer } from "../../backup/restore/copy-restorer.ts";
import { Restic } from "../../backup/restic/restic.ts";
import { loadConfig } from "../../lib/config.ts";
import { clientConfig, pgServerFor } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { createLogger } from "../../lib/logger.ts";
import { homeLayout } from "../../lib/paths.ts";
import { ensureSecrets } from "../../lib/secrets.ts";

const [setId] = process.argv.slice(2);
const config = loadConfig();
const server = pgServerFor(config, ensureSecrets(homeLayout(config.home).secretsDir).postgresPassword);
const ops = openSequelize(clientConfig(server, config.database.opsDatabase), { poolMax: 3 });
const ctx = backupContextFor({
  config,
  log: createLogger("restore-copy-child", { level: "silent" }),
  pg: server,
  opsSequelize: ops,
  production: () => productionReleaseAtRest(config, ops),
});
try {
  await copyRestorer({
    ctx,
    restic: new Restic({ log: ctx.log }),
    setId,
    database: `${ctx.databases.product}_staging`,
    purpose: "staging",
    startedBy: "test:crash",
  });
  process.stdout.write("restore copy: succeeded\n");
} catch (err) {
  process.stdout.write(`restore copy: failed: ${(err as Error).message}\n`);
} finally {
  await ops.close();
}
