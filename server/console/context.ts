import type { Sequelize } from "sequelize";
import type { AuditLog } from "../../appliance/audit/audit-log.ts";
import type { PlumConfig } from "../../lib/config.ts";
import type { OpsModels } from "./models/ops-models.ts";

/** What console commands work with. */
export interface ConsoleContext {
  sequelize: Sequelize;
  models: OpsModels;
  audit: AuditLog;
  security: PlumConfig["security"];
  sessionHours: number;
}
