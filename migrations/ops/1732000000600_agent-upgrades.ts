import type { MigrationBuilder } from "node-pg-migrate";

/**
 * Upgrades of the agent itself (kind `agent`): the same table, so the same lock (one unfinished upgrade of any
 * kind) and the same history. Its steps reuse the names: verify, snapshot, promote (the release installed in
 * /opt/plum and `current` switched to it), soak (the new agent on trial), complete.
 */
export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.dropConstraint("upgrades", "upgrades_kind_check");
  pgm.addConstraint("upgrades", "upgrades_kind_check", { check: "kind in ('upgrade', 'rollback', 'agent')" });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.sql("delete from upgrades where kind = 'agent'");
  pgm.dropConstraint("upgrades", "upgrades_kind_check");
  pgm.addConstraint("upgrades", "upgrades_kind_check", { check: "kind in ('upgrade', 'rollback')" });
}
