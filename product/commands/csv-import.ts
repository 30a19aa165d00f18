import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import { parse } from "csv-parse";
import { DEFAULT_MAX_IMPORT_ROWS } from "../../lib/config.ts";
import { BadRequestError } from "../../lib/http/http-errors.ts";

/** One problem in an imported file, where a person can find it: the line, the column, what is wrong. */
export interface RowError<C extends string = string> {
  line: number;
  column: C | "(row)";
  reason: string;
}

/** An import stops reading at this many problems: a file with more needs fixing at its source, not row by row. */
export const MAX_ROW_ERRORS = 100;
export { DEFAULT_MAX_IMPORT_ROWS };

/** A CSV file: its text, or the path of an uploaded file (read as a stream). */
export type CsvSource = string | Buffer | { path: string };

function rejection(count: number, truncated: boolean): string {
  if (truncated)
    return `Nothing was imported: the file has at least ${count} problems, so reading stopped there; the first ${count} are listed. Fix them (and check the rest of the file) and import the whole file again.`;
  return `Nothing was imported: ${count} problem${count === 1 ? "" : "s"} in the file. Fix ${count === 1 ? "it" : "them"} and import the whole file again.`;
}

/** A file with any problem imports nothing: every problem is listed, up to MAX_ROW_ERRORS. */
export class ImportRejected<C extends string = string> extends BadRequestError {
  readonly errors: RowError<C>[];
  /** True when reading stopped at MAX_ROW_ERRORS: the file may hold more problems than those listed. */
  readonly truncated: boolean;
  constructor(errors: RowError<C>[], message?: string) {
    const truncated = errors.length > MAX_ROW_ERRORS;
    const listed = errors.slice(0, MAX_ROW_ERRORS);
    super(message ?? rejection(listed.length, truncated));
    this.errors = listed;
    this.truncated = truncated;
  }
}

const CHUNK = 64 * 1024;

/** The file in chunks, with a turn of the event loop between them: a large import never stalls other requests. */
async function* chunksOf(source: CsvSource): AsyncGenerator<Buffer | string> {
  if (typeof source === "object" && !Buffer.isBuffer(source)) {
    for await (const chunk of createReadStream(source.path, { highWaterMark: CHUNK })) {
      yield chunk as Buffer;
      await nextTurn();
    }
    return;
  }
  for (let at = 0; at < source.length; at += CHUNK) {
    yield source.slice(at, at + CHUNK);
    await nextTurn();
  }
}

/**
 * Read a CSV file whose header names `columns` (case-insensitive, any order, extra columns ignored), streaming:
 * each row goes to `row` with its line number and a `bad` callback for its problems. Broken CSV, an empty file, a
 * missing column or more than `maxRows` rows rejects the file; so do the problems `row` reports, and reading
 * stops at the MAX_ROW_ERRORS-th (plus one, so the rejection can say there are more).
 */
export async function readCsvRows<C extends string, R>(props: {
  source: CsvSource;
  columns: readonly C[];
  emptyReason: string;
  maxRows: number;
  row: (record: Record<C, string>, line: number, bad: (column: C | "(row)", reason: string) => void) => R;
}): Promise<R[]> {
  const { columns, maxRows } = props;
  const parser = parse({
    columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
    bom: true,
    trim: true,
    skip_empty_lines: true,
    info: true,
  });
  const input = Readable.from(chunksOf(props.source));
  input.on("error", (err) => parser.destroy(err));
  input.pipe(parser);
  const stop = () => {
    input.unpipe(parser);
    input.destroy();
    parser.destroy();
  };

  const errors: RowError<C>[] = [];
  const rows: R[] = [];
  const bad = (line: number) => (column: C | "(row)", reason: string) => void errors.push({ line, column, reason });
  let count = 0;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      if (count === 0) {
        const header = Object.keys(record);
        const missing = columns.filter((c) => !header.includes(c));
        if (missing.length > 0) {
          stop();
          throw new ImportRejected<C>(missing.map((c) => ({ line: 1, column: c, reason: `missing column "${c}" (expected: ${columns.join(", ")})` })));
        }
      }
      count++;
      if (count > maxRows) {
        stop();
        throw new ImportRejected<C>(
          [{ line: info.lines, column: "(row)", reason: `row ${count} is one more than the ${maxRows} rows one import takes` }],
          `Nothing was imported: the file has more than ${maxRows} rows, the most one import takes (imports.maxRows in plum.yaml). Split it into files of at most ${maxRows} rows and import each, or ask the appliance admin to raise imports.maxRows.`,
        );
      }
      rows.push(props.row(record as Record<C, string>, info.lines, bad(info.lines)));
      if (errors.length > MAX_ROW_ERRORS) {
        stop();
        break;
      }
    }
  } catch (err) {
    if (err instanceof ImportRejected) throw err;
    const e = err as { message: string; lines?: number; code?: string };
    if (!e.code?.startsWith("CSV_")) throw err;
    throw new ImportRejected<C>([
      ...errors,
      { line: e.lines ?? 1, column: "(row)", reason: `not valid CSV: ${e.message.replace(/^Invalid Record Length: /, "")}` },
    ]);
  }
  if (count === 0) throw new ImportRejected<C>([{ line: 1, column: "(row)", reason: props.emptyReason }]);
  if (errors.length > 0) throw new ImportRejected(errors);
  return rows;
}
