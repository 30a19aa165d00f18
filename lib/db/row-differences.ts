import pg from "pg";
import { keyText, STABLE_TEXT_SETTINGS, valueHash } from "./table-fingerprints.ts";

/** One side of a comparison: a table, its key columns, and the columns compared (pairwise with the other side's). */
export interface ComparedTable {
  table: string;
  key: string[];
  columns: string[];
}

export interface RowDifferences {
  /** Rows whose key is in both tables. */
  compared: number;
  deleted: { rows: number; examples: string[] };
  inserted: { rows: number; examples: string[] };
  /** By the `after` side's column name: rows (with the same key) whose value differs. */
  changed: Record<string, { rows: number; examples: string[] }>;
}

const BATCH = 2000;
const LONG_KEY = 32;
const INTEGER_TYPES = new Set(["smallint", "integer", "bigint"]);
const ROW = "__fp_row";

interface Row {
  k: string;
  [h: string]: string | null;
}

/** A server-side cursor over one table, ordered by key, read BATCH rows at a time. */
class KeyOrderedCursor {
  private buffer: Row[] = [];
  private at = 0;
  private done = false;
  constructor(
    private readonly client: pg.ClientBase,
    private readonly name: string,
  ) {}

  static async open(client: pg.ClientBase, name: string, side: ComparedTable, integerOrder: boolean): Promise<KeyOrderedCursor> {
    const types = await columnTypes(client, side.table);
    const missing = [...side.key, ...side.columns].filter((c) => !types.has(c));
    if (missing.length > 0) throw new Error(`table ${side.table} has no column ${missing.join(", ")}`);
    const key = keyText(side.key, ROW);
    const hashes = side.columns.map((c, i) => `${valueHash(`${ROW}.${pg.escapeIdentifier(c)}`, types.get(c)!, "0")}::text as h${i}`);
    const order = integerOrder ? `${ROW}.${pg.escapeIdentifier(side.key[0])}` : `${key} collate "C"`;
    await client.query("begin isolation level repeatable read, read only");
    for (const [setting, value] of Object.entries(STABLE_TEXT_SETTINGS)) await client.query("select set_config($1, $2, true)", [setting, value]);
    await client.query(
      `declare ${name} no scroll cursor for select ${[`${key} as k`, ...hashes].join(", ")} from public.${pg.escapeIdentifier(side.table)} as ${ROW} order by ${order}`,
    );
    return new KeyOrderedCursor(client, name);
  }

  async peek(): Promise<Row | undefined> {
    if (this.at < this.buffer.length) return this.buffer[this.at];
    if (this.done) return undefined;
    this.buffer = (await this.client.query<Row>(`fetch forward ${BATCH} from ${this.name}`)).rows;
    this.at = 0;
    if (this.buffer.length < BATCH) this.done = true;
    return this.buffer[0];
  }

  take(): void {
    this.at++;
  }

  async close(): Promise<void> {
    await this.client.query("rollback").catch(() => undefined);
  }
}

async function columnTypes(client: pg.ClientBase, table: string): Promise<Map<string, string>> {
  const { rows } = await client.query<{ name: string; type: string }>(
    `select a.attname as name, format_type(a.atttypid, null) as type from pg_attribute a
      where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped`,
    [`public.${pg.escapeIdentifier(table)}`],
  );
  return new Map(rows.map((r) => [r.name, r.type]));
}

async function isIntegerKey(client: pg.ClientBase, side: ComparedTable): Promise<boolean> {
  return side.key.length === 1 && INTEGER_TYPES.has((await columnTypes(client, side.table)).get(side.key[0]) ?? "");
}

/**
 * Which rows differ between two copies of a table (a database before a change and after it), by primary key:
 * rows deleted, rows inserted, and per column the rows whose value changed, each with a few keys as examples.
 * Both sides stream through server-side cursors ordered by key and are merged here BATCH rows at a time, so
 * memory stays flat whatever the table's size. The sides must be on the same server (one collation).
 */
export async function rowDifferences(props: {
  before: pg.ClientBase;
  after: pg.ClientBase;
  beforeTable: ComparedTable;
  afterTable: ComparedTable;
  examples?: number;
}): Promise<RowDifferences> {
  const { beforeTable, afterTable } = props;
  const examples = props.examples ?? 5;
  if (beforeTable.columns.length !== afterTable.columns.length || beforeTable.key.length !== afterTable.key.length)
    throw new Error("the two sides of a row comparison must name as many columns and key columns");
  const integerOrder = (await isIntegerKey(props.before, beforeTable)) && (await isIntegerKey(props.after, afterTable));
  const compare = integerOrder
    ? (a: string, b: string) => {
        const x = BigInt(a);
        const y = BigInt(b);
        return x < y ? -1 : x > y ? 1 : 0;
      }
    : (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
  // A long key may be a token or its hash (product_sessions): shortened, it still tells rows apart in a report.
  const label = (k: string) => `${afterTable.key.join(",")}=${k.length > LONG_KEY ? `${k.slice(0, 12)}…` : k}`;
  const result: RowDifferences = {
    compared: 0,
    deleted: { rows: 0, examples: [] },
    inserted: { rows: 0, examples: [] },
    changed: Object.fromEntries(afterTable.columns.map((c) => [c, { rows: 0, examples: [] as string[] }])),
  };
  const note = (bucket: { rows: number; examples: string[] }, k: string) => {
    bucket.rows++;
    if (bucket.examples.length < examples) bucket.examples.push(label(k));
  };
  const before = await KeyOrderedCursor.open(props.before, "plum_rows_before", beforeTable, integerOrder);
  try {
    const after = await KeyOrderedCursor.open(props.after, "plum_rows_after", afterTable, integerOrder);
    try {
      for (;;) {
        const [b, a] = [await before.peek(), await after.peek()];
        if (!b && !a) break;
        const order = !a ? -1 : !b ? 1 : compare(b.k, a.k);
        if (order < 0) {
          note(result.deleted, b!.k);
          before.take();
        } else if (order > 0) {
          note(result.inserted, a!.k);
          after.take();
        } else {
          result.compared++;
          afterTable.columns.forEach((c, i) => {
            if (b!["h" + i] !== a!["h" + i]) note(result.changed[c], a!.k);
          });
          before.take();
          after.take();
        }
      }
    } finally {
      await after.close();
    }
  } finally {
    await before.close();
  }
  return result;
}
