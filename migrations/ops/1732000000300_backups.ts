import type { MigrationBuilder } from "node-pg-migrate";
import { makeAppendOnly, undoAppendOnly } from "../../lib/db/append-only.ts";

/**
 * The backup catalogue: one row per backup set (its snapshots in both repositories, its manifest), and the
 * hash-chained evidence log of every backup, copy, check, forget/prune, restore and drill.
 */
export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable("backup_sets", {
    id: { type: "text", primaryKey: true }, // the set id, also a restic tag: set:<id>
    kind: { type: "text", notNull: true, check: "kind in ('scheduled', 'manual', 'pre-upgrade', 'pre-restore')" },
    status: { type: "text", notNull: true, default: "running", check: "status in ('running', 'succeeded', 'failed', 'forgotten')" },
    started_at: { type: "timestamptz", notNull: true },
    finished_at: { type: "timestamptz" },
    app_version: { type: "text", notNull: true },
    schema_version: { type: "text", notNull: true },
    // {"db-plum": "<snapshot id>", "db-ops": "…", "files": "…"} in the primary, and after a copy in the secondary
    primary_snapshots: { type: "jsonb", notNull: true, default: "{}" },
    secondary_snapshots: { type: "jsonb" },
    copied_at: { type: "timestamptz" },
    bytes_added: { type: "bigint" },
    bytes_processed: { type: "bigint" },
    manifest: { type: "jsonb" }, // row counts per table, file list with sha256
    error: { type: "text" },
    started_by: { type: "text", notNull: true },
  });
  pgm.createIndex("backup_sets", "started_at");

  pgm.createTable("backup_evidence", {
    id: { type: "bigint", primaryKey: true },
    at: { type: "timestamptz", notNull: true },
    kind: { type: "text", notNull: true, check: "kind in ('backup', 'copy', 'check', 'forget', 'restore', 'drill')" },
    outcome: { type: "text", notNull: true, check: "outcome in ('success', 'failure')" },
    set_id: { type: "text" },
    repository: { type: "text" },
    detail: { type: "jsonb", notNull: true, default: "{}" },
    prev_hash: { type: "text", notNull: true },
    hash: { type: "text", notNull: true },
  });
  pgm.createIndex("backup_evidence", ["kind", "at"]);
  makeAppendOnly(pgm, "backup_evidence");
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  undoAppendOnly(pgm, "backup_evidence");
  pgm.sql("delete from hash_chain_heads where chain = 'backup_evidence'");
  pgm.dropTable("backup_evidence");
  pgm.dropTable("backup_sets");
}
