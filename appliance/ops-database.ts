import type { Sequelize } from "sequelize";
import { anchorSettingsOf, type AnchorSettings } from "../lib/chain-anchors.ts";
import type { PlumConfig } from "../lib/config.ts";
import { createLogger } from "../lib/logger.ts";
import { homeLayout } from "../lib/paths.ts";
import { ensureSecrets } from "../lib/secrets.ts";
import { clientConfig, connectAdmin, pgServerFor, type PgServer } from "../lib/db/database.ts";
import { openSequelize } from "../lib/db/sequelize.ts";
import { defineOpsModels, type OpsModels } from "./console/models/ops-models.ts";
import { auditForwarding } from "./audit/audit-forwarding.ts";
import { AuditLog } from "./audit/audit-log.ts";

/** The configured PostgreSQL server, checked to answer (a clear error when it does not). */
export async function reachableServer(config: PlumConfig): Promise<PgServer> {
  const secrets = ensureSecrets(homeLayout(config.home).secretsDir);
  const server = pgServerFor(config, secrets.postgresPassword);
  await (await connectAdmin(server)).end();
  return server;
}

/** The product's database (plum) of this appliance, for CLI commands run beside a running agent. */
export async function openProductDatabase(config: PlumConfig): Promise<{ server: PgServer; sequelize: Sequelize }> {
  const server = await reachableServer(config);
  return { server, sequelize: openSequelize(clientConfig(server, config.database.productDatabase), { poolMax: 5 }) };
}

/** The appliance's own database (plum_ops), as a command beside a running agent sees it. */
export interface OpsDatabase {
  server: PgServer;
  sequelize: Sequelize;
  models: OpsModels;
  audit: AuditLog;
  /** The anchor file and the appliance key (checkpoints outside the database). */
  anchors: AnchorSettings;
}

/**
 * Open plum_ops, do `work` with it, and close it whatever `work` did: the one way CLI commands reach it. What
 * the command appends to the audit log is forwarded to syslog as the agent's own events are, when configured.
 */
export async function withOpsDatabase<T>(config: PlumConfig, work: (db: OpsDatabase) => Promise<T>): Promise<T> {
  const server = await reachableServer(config);
  const anchors = anchorSettingsOf(config.home, ensureSecrets(homeLayout(config.home).secretsDir));
  const sequelize = openSequelize(clientConfig(server, config.database.opsDatabase), { poolMax: 3 });
  const forwarding = auditForwarding(config, createLogger("plumctl", { level: "warn" }), "plumctl");
  forwarding?.watch(sequelize);
  try {
    return await work({ server, sequelize, models: defineOpsModels(sequelize), audit: new AuditLog(sequelize, anchors), anchors });
  } finally {
    await sequelize.close();
    await forwarding?.close();
  }
}
