import type { Sequelize } from "sequelize";
import { defineAuthModels, type AuthModels, type AuthUser } from "../../../lib/http/auth/auth-models.ts";

export const ROLES = ["admin", "operator", "auditor"] as const;
export type Role = (typeof ROLES)[number];

export type OpsUser = AuthUser;
export type OpsModels = AuthModels;

/** The console's users, sessions and sign-in attempts in plum_ops (created by migrations/ops). */
export function defineOpsModels(sequelize: Sequelize): OpsModels {
  return defineAuthModels(sequelize, {
    name: "Ops",
    users: "ops_users",
    sessions: "ops_sessions",
    attempts: "ops_login_attempts",
    roles: ROLES,
    usernamePattern: /^[a-z0-9][a-z0-9._-]{1,62}$/,
  });
}
