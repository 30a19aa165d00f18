import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { DataChange } from "../../lib/db/data-changes.ts";

/** Patches a test applies to a copy of this tree before building a bundle from it: what a real next release changes. */
export type TreePatch = (tree: string) => void;

/**
 * A product migration with plain SQL up and down; `dataChanges`: what it states it changes in the data (the
 * bundle builder derives the rest from the SQL it can read).
 */
export function addMigration(name: string, up: string, down: string | false, opts: { dataChanges?: DataChange[] } = {}): TreePatch {
  return (tree) =>
    writeFileSync(
      path.join(tree, "migrations", `${name}.ts`),
      `import type { MigrationBuilder } from "node-pg-migrate";\n` +
        (opts.dataChanges ? `import type { DataChange } from "../lib/db/data-changes.ts";\n` : "") +
        `export async function up(pgm: MigrationBuilder): Promise<void> {\n  pgm.sql(${JSON.stringify(up)});\n}\n` +
        (down === false
          ? `export const down = false;\n`
          : `export async function down(pgm: MigrationBuilder): Promise<void> {\n  pgm.sql(${JSON.stringify(down)});\n}\n`) +
        (opts.dataChanges ? `export const dataChanges: DataChange[] = ${JSON.stringify(opts.dataChanges)};\n` : ""),
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

/**
 * Migrations that silently damage data: each hides its change where the bundle builder cannot read it (a DO
 * block, a function it calls, a trigger that a harmless-looking statement fires), so the release declares
 * nothing of it. The upgrade's data-diff gate must refuse each at validate, naming the table and column.
 */
export const SILENT_DAMAGE = {
  /** catalogue_items.points_cost rounded to whole hundreds (at least 100), in a DO block. */
  roundedItemCosts: addMigration(
    "1732000000800_item-costs",
    "do $$ begin update catalogue_items set points_cost = greatest(100, round(points_cost / 100.0) * 100)::int where points_cost % 100 <> 0; end $$",
    "select 1",
  ),
  /** Every third programme no ledger entry names is deleted, by a function the migration makes, calls and drops. */
  prunedProgrammes: addMigration(
    "1732000000800_tidy-programmes",
    "create function tidy_programmes() returns void language sql as $$ delete from programmes p where p.id % 3 = 0 and not exists (select 1 from ledger_entries l where l.programme_id = p.id) $$; " +
      "select tidy_programmes(); drop function tidy_programmes()",
    "select 1",
  ),
  /** The e-mail addresses of the first and the last participant swapped: every count and every value set unchanged. */
  swappedEmails: addMigration(
    "1732000000800_participant-emails",
    "do $$ declare a int; b int; begin select min(id), max(id) into a, b from participants; " +
      "update participants p set email = q.email from participants q where (p.id = a and q.id = b) or (p.id = b and q.id = a); end $$",
    "select 1",
  ),
  /** Merchant names lower-cased by a trigger that an UPDATE of contact_email (which changes no value) fires. */
  lowerCasedMerchantNames: lowerCasedMerchantNames(),
};

/** The migration of SILENT_DAMAGE.lowerCasedMerchantNames; with `declared`, the same change stated by the migration. */
export function lowerCasedMerchantNames(declared = false): TreePatch {
  return addMigration(
    "1732000000800_merchant-names",
    "create function merchant_names_tidy() returns trigger language plpgsql as $$ begin new.name := lower(new.name); return new; end $$; " +
      "create trigger merchant_names_tidy before update on merchants for each row execute function merchant_names_tidy(); " +
      "update merchants set contact_email = contact_email; " +
      "drop trigger merchant_names_tidy on merchants; drop function merchant_names_tidy()",
    "select 1",
    declared ? { dataChanges: [{ change: "column-rewritten", table: "merchants", column: "name", note: "merchant names are kept in lower case" }] } : {},
  );
}
