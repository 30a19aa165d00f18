import type { Sequelize, Transaction } from "sequelize";
import type { PlumConfig } from "../../config.ts";
import type { AuthModels } from "./auth-models.ts";

/** Where sign-in, password and user events are recorded (the ops audit log, or the product's event log). */
export interface AuditSink {
  append(
    event: { actor: string; action: string; target?: string; outcome?: "success" | "failure" | "denied"; detail?: Record<string, unknown> },
    transaction?: Transaction,
  ): Promise<unknown>;
}

/** What the shared sign-in, session and password code works with. */
export interface AuthContext {
  sequelize: Sequelize;
  models: AuthModels;
  audit: AuditSink;
  security: PlumConfig["security"];
  sessionHours: number;
}
