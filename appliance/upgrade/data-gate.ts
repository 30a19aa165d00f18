import type { DeclaredChange, MigrationDataChanges } from "../../lib/db/data-changes.ts";
import type { RowDifferences } from "../../lib/db/row-differences.ts";
import type { DatabaseFingerprint, TableFingerprint } from "../../lib/db/table-fingerprints.ts";
import type { RowComparison } from "./upgrade-host.ts";

/**
 * The data-diff gate's judgement: staging's fingerprints before the new release's migrations and after them,
 * compared with what those migrations declare. Pure: the step (upgrade-steps.ts) measures and decides.
 */

/** A declared change with what was measured of it, for the admin to read before approving. */
export interface DeclaredOutcome extends DeclaredChange {
  migration: string;
  measured: string;
}

/** A difference no declaration covers. `rows` and `examples` come from the row-by-row comparison (failure path). */
export interface Undeclared {
  table: string;
  column?: string;
  kind: "table-appeared" | "table-gone" | "column-appeared" | "column-gone" | "values-changed" | "rows-inserted" | "rows-deleted" | "rows-changed";
  what: string;
  rows?: number;
  examples?: string[];
}

export interface GateJudgement {
  declared: DeclaredOutcome[];
  undeclared: Undeclared[];
  /** The tables whose rows to compare one by one to count and name the undeclared differences. */
  comparisons: RowComparison[];
}

interface ColumnTrack {
  name: string;
  dropped: boolean;
  rewritten: boolean;
}
interface TableTrack {
  name: string;
  dropped: boolean;
  inserted: boolean;
  deleted: boolean;
  /** By the column's name before the migrations. */
  columns: Map<string, ColumnTrack>;
  /** Columns declared added, by current name. */
  added: Set<string>;
}

const n = (x: number) => x.toLocaleString("en-GB");
const rows = (x: number) => `${n(x)} row${x === 1 ? "" : "s"}`;

/** The declarations of the migrations that ran, oldest first, each with its migration's name. */
export function declarationsFor(dataChanges: Record<string, MigrationDataChanges>, ran: string[]): Array<DeclaredChange & { migration: string }> {
  return ran.flatMap((migration) => (dataChanges[migration]?.changes ?? []).map((c) => ({ ...c, migration })));
}

/** What the builder could not read in the migrations that ran: shown, since only the gate's measurements cover it. */
export function unreadFor(dataChanges: Record<string, MigrationDataChanges>, ran: string[]): string[] {
  return ran.flatMap((migration) => (dataChanges[migration]?.unread ?? []).map((s) => `${migration}: ${s}`));
}

/**
 * Replay the declarations over the tables before (renames followed, in order), then compare each table and
 * column with what is there after. Whatever differs and is not covered is undeclared. A table declared to have
 * rows inserted or deleted has its column contents accepted as they are (only the direction of its row count is
 * checked): those rows change every column's sum, and a fingerprint cannot tell them from an edit.
 */
export function judge(before: DatabaseFingerprint, after: DatabaseFingerprint, declared: Array<DeclaredChange & { migration: string }>): GateJudgement {
  // By name: fingerprints come back from the journal's jsonb, which keeps no key order.
  const byName = <T>(record: Record<string, T>): Array<[string, T]> => Object.entries(record).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  const tracks = new Map<string, TableTrack>(); // by the table's name before
  for (const [name, t] of byName(before.tables)) {
    tracks.set(name, {
      name,
      dropped: false,
      inserted: false,
      deleted: false,
      columns: new Map(byName(t.columns).map(([c]) => [c, { name: c, dropped: false, rewritten: false }])),
      added: new Set(),
    });
  }
  const addedTables = new Map<string, TableTrack>(); // by current name
  const current = (table: string): TableTrack | undefined => addedTables.get(table) ?? [...tracks.values()].find((t) => t.name === table && !t.dropped);
  const column = (t: TableTrack, name: string) => [...t.columns.values()].find((c) => c.name === name && !c.dropped);

  // Each declaration's measurement reads the final names of what it touched, once every rename is replayed.
  const measures: Array<() => string> = [];
  for (const c of declared) {
    const t = current(c.table);
    const beforeOf = (track: TableTrack | undefined) => [...tracks].find(([, x]) => x === track)?.[0];
    const afterOf = (track: TableTrack | undefined) => (track ? after.tables[track.name] : undefined);
    switch (c.change) {
      case "table-added": {
        const added: TableTrack = { name: c.table, dropped: false, inserted: true, deleted: false, columns: new Map(), added: new Set() };
        addedTables.set(c.table, added);
        measures.push(() => (added.dropped ? "dropped again" : afterOf(added) ? `added, ${rows(afterOf(added)!.rows)}` : "not there after the migrations"));
        break;
      }
      case "table-dropped": {
        if (t) t.dropped = true;
        if (addedTables.get(c.table) === t) addedTables.delete(c.table);
        const b = before.tables[beforeOf(t) ?? ""];
        measures.push(() => (after.tables[c.table] ? "still there after the migrations" : b ? `dropped with its ${rows(b.rows)}` : "dropped"));
        break;
      }
      case "table-renamed":
        if (t) {
          t.name = c.to!;
          if (addedTables.get(c.table) === t) {
            addedTables.delete(c.table);
            addedTables.set(c.to!, t);
          }
        }
        measures.push(() => (afterOf(t) ? `renamed, ${rows(afterOf(t)!.rows)}` : "not there under its new name"));
        break;
      case "column-added":
        t?.added.add(c.column!);
        measures.push(() => {
          const col = afterOf(t)?.columns[c.column!];
          return col ? `added, ${n(col.values)} non-null value${col.values === 1 ? "" : "s"}` : "not there after the migrations";
        });
        break;
      case "column-dropped":
        if (t) {
          const col = column(t, c.column!);
          if (col) col.dropped = true;
          t.added.delete(c.column!);
        }
        measures.push(() => (afterOf(t)?.columns[c.column!] ? "still there after the migrations" : "dropped"));
        break;
      case "column-renamed": {
        const col = t && column(t, c.column!);
        if (col) col.name = c.to!;
        else if (t?.added.delete(c.column!)) t.added.add(c.to!);
        measures.push(() => (afterOf(t)?.columns[col ? col.name : c.to!] ? "renamed" : "not there under its new name"));
        break;
      }
      case "column-rewritten": {
        const col = t && column(t, c.column!);
        if (col) col.rewritten = true;
        const beforeColumn = col && [...t.columns].find(([, x]) => x === col)?.[0];
        const bv = beforeColumn ? before.tables[beforeOf(t)!]?.columns[beforeColumn] : undefined;
        measures.push(() => {
          const av = col ? afterOf(t)?.columns[col.name] : undefined;
          if (!bv || !av) return "not there before and after the migrations";
          return bv.hash === av.hash && bv.values === av.values ? "no value changed" : "values changed";
        });
        break;
      }
      case "rows-inserted":
      case "rows-deleted": {
        if (t) t[c.change === "rows-inserted" ? "inserted" : "deleted"] = true;
        const b = before.tables[beforeOf(t) ?? ""];
        measures.push(() => {
          const a = afterOf(t);
          return a && b ? `${n(b.rows)} → ${rows(a.rows)}` : a ? rows(a.rows) : "the table is not there after the migrations";
        });
        break;
      }
    }
  }

  const undeclared: Undeclared[] = [];
  const comparisons: RowComparison[] = [];
  const seenAfter = new Set<string>();
  for (const [beforeName, track] of tracks) {
    const b = before.tables[beforeName];
    if (track.dropped) continue;
    const a = after.tables[track.name];
    if (!a) {
      undeclared.push({ table: beforeName, kind: "table-gone", what: `table ${beforeName} (${rows(b.rows)}) is gone` });
      continue;
    }
    seenAfter.add(track.name);
    undeclared.push(...compareTable(beforeName, b, track, a, comparisons));
  }
  for (const [name, a] of byName(after.tables)) {
    if (seenAfter.has(name)) continue;
    if (addedTables.has(name)) continue;
    undeclared.push({ table: name, kind: "table-appeared", what: `table ${name} appeared (${rows(a.rows)})` });
  }
  return { declared: declared.map((c, i) => ({ ...c, measured: measures[i]() })), undeclared, comparisons };
}

function compareTable(beforeName: string, b: TableFingerprint, track: TableTrack, a: TableFingerprint, comparisons: RowComparison[]): Undeclared[] {
  const found: Undeclared[] = [];
  const table = track.name;
  if (a.rows > b.rows && !track.inserted) found.push({ table, kind: "rows-inserted", what: `${rows(a.rows - b.rows)} more (${n(b.rows)} → ${n(a.rows)})` });
  if (a.rows < b.rows && !track.deleted) found.push({ table, kind: "rows-deleted", what: `${rows(b.rows - a.rows)} fewer (${n(b.rows)} → ${n(a.rows)})` });
  // An undeclared change of the row count moves every column's sum with it: the columns are judged row by row.
  const countChanged = found.length > 0;
  const contentsAccepted = track.inserted || track.deleted;
  const pairs: Array<{ before: string; after: string }> = [];
  const mapped = new Set<string>();
  let columnChanged = false;
  for (const [beforeColumn, col] of track.columns) {
    if (col.dropped) continue;
    const av = a.columns[col.name];
    if (!av) {
      found.push({ table, column: col.name, kind: "column-gone", what: `column ${table}.${col.name} is gone` });
      continue;
    }
    mapped.add(col.name);
    if (!col.rewritten) pairs.push({ before: beforeColumn, after: col.name });
    const bv = b.columns[beforeColumn];
    if (contentsAccepted || col.rewritten || (bv.values === av.values && bv.hash === av.hash)) continue;
    columnChanged = true;
    if (!countChanged)
      found.push({
        table,
        column: col.name,
        kind: "values-changed",
        what: bv.values === av.values ? "values changed" : `values changed (${n(bv.values)} non-null before, ${n(av.values)} after)`,
      });
  }
  for (const c of Object.keys(a.columns).sort()) {
    if (mapped.has(c) || track.added.has(c)) continue;
    found.push({ table, column: c, kind: "column-appeared", what: `column ${table}.${c} appeared` });
  }
  // Without a primary key the column sums are unkeyed: only the whole-row sum sees values moved between rows.
  if (!columnChanged && !contentsAccepted && b.unkeyed !== undefined && a.unkeyed !== undefined && b.unkeyed !== a.unkeyed) {
    const sameColumns = Object.keys(b.columns).sort().join() === Object.keys(a.columns).sort().join();
    if (sameColumns) found.push({ table, kind: "rows-changed", what: "rows changed (the table has no primary key: the column cannot be told)" });
  }
  const rowLevel = columnChanged || countChanged;
  const beforeKey = b.key;
  const afterKey = beforeKey.map((k) => track.columns.get(k)?.name ?? k);
  if (rowLevel && beforeKey.length > 0 && afterKey.join() === a.key.join()) {
    comparisons.push({
      before: { table: beforeName, key: beforeKey, columns: pairs.map((p) => p.before) },
      after: { table, key: a.key, columns: pairs.map((p) => p.after) },
    });
  }
  return found;
}

/**
 * Fill in how many rows differ and a few keys, from the row-by-row comparisons: rows deleted and inserted get
 * their counts, and a table's column findings become exactly the columns whose values changed in rows kept.
 */
export function withRowCounts(undeclared: Undeclared[], compared: Array<{ table: string; differences?: RowDifferences; error?: string }>): Undeclared[] {
  const byTable = new Map(compared.flatMap((c) => (c.differences ? [[c.table, c.differences] as const] : [])));
  const out: Undeclared[] = [];
  const done = new Set<string>();
  for (const u of undeclared) {
    const d = byTable.get(u.table);
    if (!d) {
      out.push(u);
      continue;
    }
    if (u.kind === "rows-deleted") out.push({ ...u, rows: d.deleted.rows, examples: d.deleted.examples });
    else if (u.kind === "rows-inserted") out.push({ ...u, rows: d.inserted.rows, examples: d.inserted.examples });
    else if (u.kind !== "values-changed") out.push(u);
    if (done.has(u.table)) continue;
    done.add(u.table);
    const listed = new Map(undeclared.filter((x) => x.table === u.table && x.kind === "values-changed").map((x) => [x.column, x]));
    for (const [column, changed] of Object.entries(d.changed).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      if (changed.rows === 0) continue;
      const what = listed.get(column)?.what ?? "values changed";
      out.push({ table: u.table, column, kind: "values-changed", what, rows: changed.rows, examples: changed.examples });
    }
  }
  return out;
}

/** One finding as a phrase: "participants.email: 2 rows changed (e.g. id=3, id=7)". */
export function describeUndeclared(u: Undeclared): string {
  const where = u.column && u.kind === "values-changed" ? `${u.table}.${u.column}` : u.table;
  const eg = u.examples && u.examples.length > 0 ? ` (e.g. ${u.examples.join(", ")})` : "";
  if (u.rows !== undefined) {
    const verb = u.kind === "rows-deleted" ? "deleted" : u.kind === "rows-inserted" ? "inserted" : "changed";
    return `${where}: ${rows(u.rows)} ${verb}${eg}`;
  }
  return u.kind.startsWith("table-") || u.kind.startsWith("column-") ? u.what : `${where}: ${u.what}${eg}`;
}
