import type { MigrationBuilder } from "node-pg-migrate";

/**
 * Make a table append-only in the database itself: UPDATE, DELETE and TRUNCATE raise an error, whoever the
 * caller (the hash-chained logs: audit_log, backup_evidence). Tampering then needs a superuser dropping the
 * trigger — which the chain's verification still catches.
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
