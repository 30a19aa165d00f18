import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/** Patches a test applies to a copy of this tree before building a bundle from it: what a real next release changes. */
export type TreePatch = (tree: string) => void;

/** A product migration with plain SQL up and down. */
export function addMigration(name: string, up: string, down: string | false): TreePatch {
  return (tree) =>
    writeFileSync(
      path.join(tree, "migrations", `${name}.ts`),
      `import type { MigrationBuilder } from "node-pg-migrate";\n` +
        `export async function up(pgm: MigrationBuilder): Promise<void> {\n  pgm.sql(${JSON.stringify(up)});\n}\n` +
        (down === false
          ? `export const down = false;\n`
          : `export async function down(pgm: MigrationBuilder): Promise<void> {\n  pgm.sql(${JSON.stringify(down)});\n}\n`),
    );
}

function replaceIn(tree: string, file: string, from: string, to: string): void {
  const full = path.join(tree, file);
  const text = readFileSync(full, "utf8");
  if (!text.includes(from)) throw new Error(`patch does not apply: ${file} has no ${JSON.stringify(from)}`);
  writeFileSync(full, text.replace(from, to));
}

/** A payout calculator that rounds half up: the payout suite's golden tie cases fail. */
export const payoutsRoundHalfUp: TreePatch = (tree) =>
  replaceIn(tree, "product/payouts/minor-units.ts", "remainder * 2n > denominator", "remainder * 2n >= denominator");

/** /healthz answers 500 once a production instance has been up `afterMs` (staging validation still passes). */
export function unhealthyInProductionAfter(afterMs: number): TreePatch {
  return (tree) =>
    replaceIn(
      tree,
      "product/routes/ops-endpoints.ts",
      `app.get("/healthz", (_req, res) => {`,
      `app.get("/healthz", (_req, res) => {\n    if (deps.slot === "production" && Date.now() - startedAt > ${afterMs}) {\n      res.status(500).json({ status: "broken" });\n      return;\n    }`,
    );
}

export function compose(...patches: TreePatch[]): TreePatch {
  return (tree) => patches.forEach((p) => p(tree));
}

/**
 * Vouchers get a required `channel` (an irreversible migration, and the model that fills it): the previous
 * release can no longer issue vouchers on this schema and no down migration exists, so a rollback needs the
 * pre-upgrade snapshot.
 */
export const requiredVoucherChannel: TreePatch = compose(
  addMigration(
    "1732000000700_voucher-channel",
    "alter table vouchers add column channel text not null default 'web'; alter table vouchers alter column channel drop default",
    false,
  ),
  (tree) => {
    replaceIn(
      tree,
      "product/models/voucher.ts",
      "  redeemedByMerchantId: CreationOptional<number | null>;\n}",
      "  redeemedByMerchantId: CreationOptional<number | null>;\n  channel: CreationOptional<string>;\n}",
    );
    replaceIn(
      tree,
      "product/models/voucher.ts",
      "      redeemedByMerchantId: { type: DataTypes.INTEGER, allowNull: true },",
      '      redeemedByMerchantId: { type: DataTypes.INTEGER, allowNull: true },\n      channel: { type: DataTypes.TEXT, allowNull: false, defaultValue: "web" },',
    );
  },
);

/** The second release of the e2e upgrade suites: a new table and a nullable column (reversible, additive). */
export const V2_MIGRATION = addMigration(
  "1732000000500_release-notes",
  "create table release_notes (id serial primary key, body text not null); alter table participants add column nickname text",
  "drop table release_notes; alter table participants drop column nickname",
);
