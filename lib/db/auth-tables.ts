import type { MigrationBuilder } from "node-pg-migrate";

/**
 * The users, sessions and sign-in attempts tables of `lib/http/auth` (the ops console's in plum_ops, the
 * product's in plum): one shape, made by the migrations of each database.
 */
export function createAuthTables(pgm: MigrationBuilder, t: { users: string; sessions: string; attempts: string; roles: readonly string[] }): void {
  pgm.createTable(t.users, {
    id: "id",
    username: { type: "text", notNull: true, unique: true },
    role: { type: "text", notNull: true, check: `role in (${t.roles.map((r) => `'${r}'`).join(", ")})` },
    password_hash: { type: "text", notNull: true },
    must_change_password: { type: "boolean", notNull: true, default: true },
    locked_until: { type: "timestamptz" },
    disabled_at: { type: "timestamptz" },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createTable(t.sessions, {
    id: { type: "text", primaryKey: true }, // sha256 of the cookie token: a leaked table gives no usable session
    user_id: { type: "integer", notNull: true, references: t.users, onDelete: "CASCADE" },
    csrf_secret: { type: "text", notNull: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    expires_at: { type: "timestamptz", notNull: true },
    ip: { type: "text" },
    user_agent: { type: "text" },
  });
  pgm.createIndex(t.sessions, "user_id");
  pgm.createTable(t.attempts, {
    id: "id",
    username: { type: "text", notNull: true },
    ip: { type: "text" },
    succeeded: { type: "boolean", notNull: true },
    at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createIndex(t.attempts, ["username", "at"]);
}

export function dropAuthTables(pgm: MigrationBuilder, t: { users: string; sessions: string; attempts: string }): void {
  pgm.dropTable(t.attempts);
  pgm.dropTable(t.sessions);
  pgm.dropTable(t.users);
}
