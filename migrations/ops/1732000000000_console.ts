import type { MigrationBuilder } from "node-pg-migrate";
import { createAuthTables, dropAuthTables } from "../../server/db/auth-tables.ts";

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
  pgm.sql(`
    create function audit_log_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_log is append-only (% refused)', tg_op;
    end $$;
    create trigger audit_log_append_only before update or delete or truncate on audit_log
      for each statement execute function audit_log_append_only();
  `);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.sql("drop trigger if exists audit_log_append_only on audit_log; drop function if exists audit_log_append_only();");
  pgm.dropTable("hash_chain_heads");
  pgm.dropTable("audit_log");
  dropAuthTables(pgm, OPS_AUTH);
}
