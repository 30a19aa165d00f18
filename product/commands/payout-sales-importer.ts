import { DEFAULT_MAX_IMPORT_ROWS, ImportRejected, MAX_ROW_ERRORS, readCsvRows, type CsvSource, type RowError } from "./csv-import.ts";
import { QueryTypes } from "sequelize";
import { PERIOD_PATTERN } from "../models/payout-models.ts";
import { MAX_MINOR, parseMinor } from "../payouts/minor-units.ts";
import { frozenPeriods } from "../payouts/payout-lines.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";
import { lockSalesProgramme } from "./payout-programme.ts";

/** The columns of a sales file (header names are case-insensitive); quota and sales are whole minor units. */
export const SALES_COLUMNS = ["employee_id", "period", "quota", "sales"] as const;
type Column = (typeof SALES_COLUMNS)[number];

/** The sales file's import errors: the shared CSV-import types, for this file's columns. */
export type SalesRowError = RowError<Column>;
export { ImportRejected as SalesImportRejected };

interface SalesRow {
  line: number;
  employeeId: string;
  period: string;
  quotaMinor: bigint;
  salesMinor: bigint;
}

/** Parse and check every row of a sales file (streaming, at most `maxRows`); any problem rejects the whole file, naming each bad row. */
export async function parseSalesCsv(csv: CsvSource, maxRows = DEFAULT_MAX_IMPORT_ROWS): Promise<SalesRow[]> {
  const seen = new Map<string, number>();
  return readCsvRows({
    source: csv,
    columns: SALES_COLUMNS,
    emptyReason: "the file has no sales rows",
    maxRows,
    row: (r, line, bad: (column: Column | "(row)", reason: string) => void): SalesRow => {
      const amount = (text: string, column: "quota" | "sales", min: bigint): bigint => {
        const value = parseMinor(text);
        if (value === undefined || value < min) {
          bad(column, `"${text}" is not a whole number of minor units from ${min} to ${MAX_MINOR} (write 1250.00 EUR as 125000)`);
          return 0n;
        }
        return value;
      };
      const employeeId = r.employee_id ?? "";
      const period = r.period ?? "";
      if (!employeeId) bad("employee_id", "is empty");
      if (!PERIOD_PATTERN.test(period)) bad("period", period ? `"${period}" is not a month written YYYY-MM` : "is empty");
      const key = `${employeeId}\u0000${period}`;
      if (employeeId && seen.has(key)) bad("(row)", `${employeeId} in ${period} is also on line ${seen.get(key)}`);
      else seen.set(key, line);
      return { line, employeeId, period, quotaMinor: amount(r.quota ?? "", "quota", 1n), salesMinor: amount(r.sales ?? "", "sales", 0n) };
    },
  });
}

/**
 * Import a sales-incentive programme's sales and quotas from CSV: every row is checked first (format, known
 * participant, period not frozen by an approved run) and any problem imports nothing; otherwise every row is
 * inserted, or updates the participant's figures for that period, in one transaction.
 */
export async function payoutSalesImporter(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { programmeId: number; csv: CsvSource };
}): Promise<{ created: number; updated: number; periods: string[] }> {
  const { ctx, actor, input } = props;
  authorize(actor, "import", "Payout");
  const rows = await parseSalesCsv(input.csv, ctx.importMaxRows);
  return ctx.sequelize.transaction(async (transaction) => {
    await lockSalesProgramme(ctx, input.programmeId, transaction);
    const known = await ctx.sequelize.query<{ id: number; employee_id: string }>(
      "select id, employee_id from participants where employee_id = any($1::text[])",
      {
        bind: [[...new Set(rows.map((r) => r.employeeId))]],
        type: QueryTypes.SELECT,
        transaction,
      },
    );
    const idOf = new Map(known.map((p) => [p.employee_id, p.id]));
    const frozen = new Set(await frozenPeriods(ctx.sequelize, input.programmeId, transaction));
    const errors: SalesRowError[] = [];
    for (const r of rows) {
      if (errors.length > MAX_ROW_ERRORS) break;
      if (!idOf.has(r.employeeId))
        errors.push({ line: r.line, column: "employee_id", reason: `no participant has the employee id "${r.employeeId}": import them first` });
      if (frozen.has(r.period)) errors.push({ line: r.line, column: "period", reason: `the payouts of ${r.period} are approved: its sales are frozen` });
    }
    if (errors.length > 0) throw new ImportRejected(errors);

    const [result] = await ctx.sequelize.query(
      `insert into sales_records (programme_id, participant_id, period, quota_minor, sales_minor)
       select $1, * from unnest($2::int[], $3::text[], $4::bigint[], $5::bigint[])
       on conflict (programme_id, participant_id, period) do update set quota_minor = excluded.quota_minor, sales_minor = excluded.sales_minor, updated_at = now()
       returning (xmax = 0) as inserted`,
      {
        bind: [
          input.programmeId,
          rows.map((r) => idOf.get(r.employeeId)),
          rows.map((r) => r.period),
          rows.map((r) => r.quotaMinor.toString()),
          rows.map((r) => r.salesMinor.toString()),
        ],
        transaction,
      },
    );
    const created = (result as Array<{ inserted: boolean }>).filter((r) => r.inserted).length;
    const summary = { created, updated: rows.length - created, periods: [...new Set(rows.map((r) => r.period))].sort() };
    await ctx.models.events.append(
      { actor: actorLabel(actor), action: "payout.sales.import", target: `programme:${input.programmeId}`, detail: summary },
      transaction,
    );
    return summary;
  });
}
