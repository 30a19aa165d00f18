import { parse } from "csv-parse/sync";
import { BadRequestError } from "../../lib/http/http-errors.ts";

/** One problem in an imported file, where a person can find it: the line, the column, what is wrong. */
export interface RowError<C extends string = string> {
  line: number;
  column: C | "(row)";
  reason: string;
}

/** A file with any problem imports nothing: every problem is listed. */
export class ImportRejected<C extends string = string> extends BadRequestError {
  constructor(readonly errors: RowError<C>[]) {
    super(
      `Nothing was imported: ${errors.length} problem${errors.length === 1 ? "" : "s"} in the file. Fix ${errors.length === 1 ? "it" : "them"} and import the whole file again.`,
    );
  }
}

/**
 * Read a CSV file whose header names `columns` (case-insensitive, any order, extra columns ignored).
 * Broken CSV, an empty file or a missing column rejects the file; rows come back with their line numbers.
 */
export function readCsvRows<C extends string>(
  csv: string | Buffer,
  columns: readonly C[],
  emptyReason: string,
): Array<{ line: number; record: Record<C, string> }> {
  let records: Array<{ record: Record<string, string>; info: { lines: number } }>;
  try {
    records = parse(csv, {
      columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
      bom: true,
      trim: true,
      skip_empty_lines: true,
      info: true,
    });
  } catch (err) {
    const e = err as { message: string; lines?: number };
    throw new ImportRejected<C>([{ line: e.lines ?? 1, column: "(row)", reason: `not valid CSV: ${e.message.replace(/^Invalid Record Length: /, "")}` }]);
  }
  if (records.length === 0) throw new ImportRejected<C>([{ line: 1, column: "(row)", reason: emptyReason }]);
  const header = Object.keys(records[0].record);
  const missing = columns.filter((c) => !header.includes(c));
  if (missing.length > 0)
    throw new ImportRejected<C>(missing.map((c) => ({ line: 1, column: c, reason: `missing column "${c}" (expected: ${columns.join(", ")})` })));
  return records.map(({ record, info }) => ({ line: info.lines, record: record as Record<C, string> }));
}
