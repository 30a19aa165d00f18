import type { MigrationBuilder } from "node-pg-migrate";
import { makeAppendOnly, undoAppendOnly } from "../../lib/db/append-only.ts";
import { createAuthTables, dropAuthTables } from "../../lib/db/auth-tables.ts";

const OPS_AUTH = { users: "ops_users", sessions: "ops_sessions", attempts: "ops_login_attempts", roles: ["admin", "operator", "auditor"] };

/** The appliance's own state: console users, sessions, sign-in attempts, and the hash-chained audit log. */
export async function up(pgm: MigrationBuilder): Promise<void> {
  createAuthTables(pgm, OPS_AUTH);

  pgm.createTable("audit_log", {
    id: { type: "bigint", primaryKey: true },
    at: { type: "timestamptz", notNull: true },
    actor: { type: "text", notNull: true },
    action: { type: "text", notNull: true },
    target: { type: "text" },
    outcome: { type: "text", notNull: true, default: "success" },
    detail: { type: "jsonb", notNull: true, default: "{}" },
    prev_hash: { type: "text", notNull: true },
    hash: { type: "text", notNull: true },
  });
  pgm.createIndex("audit_log", "at");
  pgm.createIndex("audit_log", "action");
  // The head of each hash chain: deleting the newest rows is caught too.
  pgm.createTable("hash_chain_heads", {
    chain: { type: "text", primaryKey: true },
    last_id: { type: "bigint", notNull: true },
    last_hash: { type: "text", notNull: true },
  });
  // Append-only: the application never updates or deletes audit rows; the database refuses it as well.
  makeAppendOnly(pgm, "audit_log");
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  undoAppendOnly(pgm, "audit_log");
  pgm.dropTable("hash_chain_heads");
  pgm.dropTable("audit_log");
  dropAuthTables(pgm, OPS_AUTH);
}
