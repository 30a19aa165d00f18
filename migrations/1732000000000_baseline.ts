import type { MigrationBuilder } from "node-pg-migrate";

/** The product's first schema: settings the rewards platform keeps per installation. */
export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable("settings", {
    key: { type: "text", primaryKey: true },
    value: { type: "jsonb", notNull: true },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable("settings");
}
