import { z } from "zod";

/**
 * What a product migration changes in the data, as its release declares it: the upgrade's data-diff gate
 * compares staging before and after the migrations with these, and refuses any difference none of them covers.
 * The bundle builder derives most of them from the migration itself; a migration states the rest by exporting
 * `dataChanges: DataChange[]` (e.g. an UPDATE it runs through a function the builder cannot read).
 */
export const DATA_CHANGE_KINDS = [
  "table-added",
  "table-dropped",
  "table-renamed",
  "column-added",
  "column-dropped",
  "column-renamed",
  /** The column's values may change (an UPDATE, a type change). */
  "column-rewritten",
  "rows-inserted",
  "rows-deleted",
] as const;
export type DataChangeKind = (typeof DATA_CHANGE_KINDS)[number];

const identifier = z.string().min(1).max(63);

const dataChangeShape = {
  change: z.enum(DATA_CHANGE_KINDS),
  table: identifier,
  /** The column of a column-* change (its old name for column-renamed). */
  column: identifier.optional(),
  /** The new name of a table-renamed or column-renamed. */
  to: identifier.optional(),
  /** Why, in the release author's words: the admin reads it before approving. */
  note: z.string().max(500).optional(),
};

function coherent(c: { change: DataChangeKind; column?: string; to?: string }, ctx: z.RefinementCtx): void {
  const needsColumn = c.change.startsWith("column-");
  if (needsColumn && !c.column) ctx.addIssue({ code: "custom", message: `a ${c.change} names its column`, path: ["column"] });
  if (!needsColumn && c.column) ctx.addIssue({ code: "custom", message: `a ${c.change} names no column`, path: ["column"] });
  if (c.change.endsWith("-renamed") !== !!c.to) ctx.addIssue({ code: "custom", message: "`to` goes with a rename, and only with one", path: ["to"] });
}

/** A change as a migration states it (`export const dataChanges: DataChange[]`). */
export const dataChangeSchema = z.strictObject(dataChangeShape).superRefine(coherent);
export type DataChange = z.infer<typeof dataChangeSchema>;

/** A change as a bundle's manifest carries it: derived by the builder from the migration, or stated in it. */
export const declaredChangeSchema = z.strictObject({ ...dataChangeShape, source: z.enum(["derived", "stated"]) }).superRefine(coherent);
export type DeclaredChange = z.infer<typeof declaredChangeSchema>;

/** One migration's declaration in a manifest; `unread`: its statements the builder could not read (shown to the admin). */
export const migrationDataChangesSchema = z.strictObject({
  changes: z.array(declaredChangeSchema).max(1000),
  unread: z.array(z.string().max(200)).max(100).optional(),
});
export type MigrationDataChanges = z.infer<typeof migrationDataChangesSchema>;

/** "table", "table.column", or "table.column → new" for a line of a report. */
export function describeChange(c: DataChange): string {
  const target = c.column ? `${c.table}.${c.column}` : c.table;
  return `${c.change} ${target}${c.to ? ` → ${c.to}` : ""}`;
}
