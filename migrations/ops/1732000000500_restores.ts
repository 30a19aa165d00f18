import type { MigrationBuilder } from "node-pg-migrate";
import { makeAppendOnly, undoAppendOnly } from "../../lib/db/append-only.ts";

/**
 * Restores: one row per restore (over production, a verified copy for staging, a drill), with every database
 * and folder it makes, keeps or swaps named before any of them exists; and the hash-chained restore journal of
 * every step started, done, failed or undone. An agent restarted after a crash reads both to finish or undo an
 * interrupted restore before anything touches the product database. At most one restore over production is
 * unfinished at a time (a partial unique index: the database is the lock).
 */
export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable("restores", {
    id: { type: "serial", primaryKey: true },
    kind: { type: "text", notNull: true, check: "kind in ('production', 'copy', 'drill')" },
    set_id: { type: "text" }, // a drill of "the latest set" learns it after its row exists
    repository: { type: "text", notNull: true, check: "repository in ('primary', 'secondary')" },
    parts: { type: "jsonb", notNull: true, default: "{}" }, // {"db": true, "files": true}
    status: { type: "text", notNull: true, default: "running", check: "status in ('running', 'succeeded', 'failed')" },
    step: { type: "text" }, // the newest step started
    // {"live": "plum", "database": "plum_restore_…", "keptDatabase": "plum_before_restore_…", "filesDir": …, "filesTarget": …, "keptFiles": …}
    names: { type: "jsonb", notNull: true, default: "{}" },
    purpose: { type: "text" }, // a copy's reason ("staging")
    pre_restore_set_id: { type: "text" },
    requested_by: { type: "text", notNull: true },
    started_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    finished_at: { type: "timestamptz" },
    error: { type: "text" },
    // How it ended when it did not end in its own process: {"by": "agent start", "action": "undone" | "finished", "at": …}
    recovery: { type: "jsonb" },
  });
  pgm.createIndex("restores", "started_at");
  pgm.sql("create unique index restores_one_unfinished_production on restores ((true)) where finished_at is null and kind = 'production'");

  pgm.createTable("restore_journal", {
    id: { type: "bigint", primaryKey: true },
    at: { type: "timestamptz", notNull: true },
    restore_id: { type: "integer", notNull: true },
    step: { type: "text", notNull: true },
    phase: { type: "text", notNull: true, check: "phase in ('started', 'done', 'failed', 'note')" },
    detail: { type: "jsonb", notNull: true, default: "{}" },
    prev_hash: { type: "text", notNull: true },
    hash: { type: "text", notNull: true },
  });
  pgm.createIndex("restore_journal", ["restore_id", "id"]);
  makeAppendOnly(pgm, "restore_journal");
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  undoAppendOnly(pgm, "restore_journal");
  pgm.sql("delete from hash_chain_heads where chain = 'restore_journal'");
  pgm.dropTable("restore_journal");
  pgm.dropTable("restores");
}
