import type { MigrationBuilder } from "node-pg-migrate";

/** The appliance's own state: console users, sessions, sign-in attempts, and the hash-chained audit log. */
export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable("ops_users", {
    id: "id",
    username: { type: "text", notNull: true, unique: true },
    role: { type: "text", notNull: true, check: "role in ('admin', 'operator', 'auditor')" },
    password_hash: { type: "text", notNull: true },
    must_change_password: { type: "boolean", notNull: true, default: true },
    locked_until: { type: "timestamptz" },
    disabled_at: { type: "timestamptz" },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createTable("ops_sessions", {
    id: { type: "text", primaryKey: true }, // sha256 of the cookie token: a leaked table gives no usable session
    user_id: { type: "integer", notNull: true, references: "ops_users", onDelete: "CASCADE" },
    csrf_secret: { type: "text", notNull: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    expires_at: { type: "timestamptz", notNull: true },
    ip: { type: "text" },
    user_agent: { type: "text" },
  });
  pgm.createIndex("ops_sessions", "user_id");
  pgm.createTable("ops_login_attempts", {
    id: "id",
    username: { type: "text", notNull: true },
    ip: { type: "text" },
    succeeded: { type: "boolean", notNull: true },
    at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createIndex("ops_login_attempts", ["username", "at"]);

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
  pgm.dropTable("ops_login_attempts");
  pgm.dropTable("ops_sessions");
  pgm.dropTable("ops_users");
}
