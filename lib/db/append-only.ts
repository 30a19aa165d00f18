import type { MigrationBuilder } from "node-pg-migrate";

/**
 * Make a table append-only in the database itself: UPDATE, DELETE and TRUNCATE raise an error for every role
 * that cannot change triggers (the hash-chained logs: audit_log, backup_evidence, the journals). It does not
 * stop a superuser or a table owner: `SET session_replication_role = replica` (or `ALTER TABLE … DISABLE
 * TRIGGER`) switches it off, and such a role can then delete rows, insert its own and recompute every hash and
 * hash_chain_heads, so the chain verifies again on its own. What catches that is outside the database: the
 * signed checkpoints in PLUM_HOME/anchors (lib/chain-anchors.ts), which `plumctl audit verify` compares the
 * chain with, and the checkpoints forwarded to syslog.
 */
export function makeAppendOnly(pgm: MigrationBuilder, table: string): void {
  pgm.sql(`
    create function ${table}_append_only() returns trigger language plpgsql as $$
    begin
      raise exception '${table} is append-only (% refused)', tg_op;
    end $$;
    create trigger ${table}_append_only before update or delete or truncate on ${table}
      for each statement execute function ${table}_append_only();
  `);
}

export function undoAppendOnly(pgm: MigrationBuilder, table: string): void {
  pgm.sql(`drop trigger if exists ${table}_append_only on ${table}; drop function if exists ${table}_append_only();`);
}
