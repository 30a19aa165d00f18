import type { MigrationBuilder } from "node-pg-migrate";
import { makeAppendOnly, undoAppendOnly } from "../../lib/db/append-only.ts";

/**
 * Upgrades: one row per upgrade (its state, decisions and report), the hash-chained journal of every step
 * started, done, failed or undone (what a restarted agent reads to resume or undo), and which release serves
 * production. A partial unique index lets at most one upgrade be unfinished: the database is the lock.
 */
export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable("upgrades", {
    id: { type: "serial", primaryKey: true },
    // a rollback to a retained release runs the same path as an upgrade, in its own row
    kind: { type: "text", notNull: true, default: "upgrade", check: "kind in ('upgrade', 'rollback')" },
    from_version: { type: "text", notNull: true },
    to_version: { type: "text", notNull: true },
    status: {
      type: "text",
      notNull: true,
      check: "status in ('running', 'waiting', 'soaking', 'rolling-back', 'restore-pending', 'completed', 'aborted', 'rolled-back', 'failed')",
    },
    step: { type: "text", notNull: true, check: "step in ('verify', 'snapshot', 'stage', 'validate', 'promote', 'soak', 'rollback', 'complete')" },
    promotion: { type: "text", notNull: true, check: "promotion in ('now', 'window', 'approval')" },
    rollback_mode: { type: "text", check: "rollback_mode in ('traffic-only', 'down-migrations', 'restore-required')" },
    snapshot_set_id: { type: "text" },
    snapshot_at: { type: "timestamptz" },
    requested_by: { type: "text", notNull: true },
    approved_by: { type: "text" },
    approved_at: { type: "timestamptz" },
    report: { type: "jsonb", notNull: true, default: "{}" },
    error: { type: "text" },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    finished_at: { type: "timestamptz" },
  });
  pgm.sql("create unique index upgrades_one_unfinished on upgrades ((true)) where finished_at is null");

  pgm.createTable("upgrade_journal", {
    id: { type: "bigint", primaryKey: true },
    at: { type: "timestamptz", notNull: true },
    upgrade_id: { type: "integer", notNull: true },
    step: { type: "text", notNull: true },
    phase: { type: "text", notNull: true, check: "phase in ('started', 'done', 'failed', 'undone', 'note')" },
    detail: { type: "jsonb", notNull: true, default: "{}" },
    prev_hash: { type: "text", notNull: true },
    hash: { type: "text", notNull: true },
  });
  pgm.createIndex("upgrade_journal", ["upgrade_id", "id"]);
  makeAppendOnly(pgm, "upgrade_journal");

  pgm.createTable("production_release", {
    id: { type: "integer", primaryKey: true, check: "id = 1" },
    version: { type: "text", notNull: true },
    changed_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    upgrade_id: { type: "integer" },
  });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable("production_release");
  undoAppendOnly(pgm, "upgrade_journal");
  pgm.sql("delete from hash_chain_heads where chain = 'upgrade_journal'");
  pgm.dropTable("upgrade_journal");
  pgm.dropTable("upgrades");
}
