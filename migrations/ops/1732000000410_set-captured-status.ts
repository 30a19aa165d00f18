import type { MigrationBuilder } from "node-pg-migrate";

/**
 * A set's status `captured`: what its catalogue row says inside the set's own dump of plum_ops. The row is
 * written so just before that dump's snapshot is taken and set back to `running` right after, so a restored
 * plum_ops names the set it came from as captured (its databases were captured; how it ended is in the
 * catalogue it was made by), never as a set still running.
 */
export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.dropConstraint("backup_sets", "backup_sets_status_check");
  pgm.addConstraint("backup_sets", "backup_sets_status_check", { check: "status in ('running', 'captured', 'succeeded', 'failed', 'forgotten')" });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.sql("update backup_sets set status = 'running' where status = 'captured'");
  pgm.dropConstraint("backup_sets", "backup_sets_status_check");
  pgm.addConstraint("backup_sets", "backup_sets_status_check", { check: "status in ('running', 'succeeded', 'failed', 'forgotten')" });
}
