import type { Sequelize } from "sequelize";
import type { PlumConfig } from "../lib/config.ts";
import { homeLayout } from "../lib/paths.ts";
import { ensureSecrets } from "../lib/secrets.ts";
import { clientConfig, connectAdmin, pgServerFor, type PgServer } from "../server/db/database.ts";
import { openSequelize } from "../server/db/sequelize.ts";
import { defineOpsModels, type OpsModels } from "../server/console/models/ops-models.ts";
import { AuditLog } from "./audit/audit-log.ts";

export interface OpsDatabase {
  server: PgServer;
  sequelize: Sequelize;
  models: OpsModels;
  audit: AuditLog;
  close(): Promise<void>;
}

/** The appliance's own database (plum_ops), for CLI commands run beside a running agent. */
export async function openOpsDatabase(config: PlumConfig): Promise<OpsDatabase> {
  const secrets = ensureSecrets(homeLayout(config.home).secretsDir);
  const server = pgServerFor(config, secrets.postgresPassword);
  await (await connectAdmin(server)).end(); // a clear error when PostgreSQL is not there
  const sequelize = openSequelize(clientConfig(server, config.database.opsDatabase), { poolMax: 3 });
  return { server, sequelize, models: defineOpsModels(sequelize), audit: new AuditLog(sequelize), close: () => sequelize.close() };
}
