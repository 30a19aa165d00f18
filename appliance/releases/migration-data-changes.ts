import { existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { dataChangeSchema, type DataChange, type DeclaredChange, type MigrationDataChanges } from "../../lib/db/data-changes.ts";
import { PlumError } from "../../lib/errors.ts";
import { migrationNames } from "../../lib/version.ts";
import { readSql } from "./sql-data-changes.ts";

/**
 * A release's declaration of what its product migrations change in the data (the manifest's `dataChanges`): each
 * migration's `up` is run against a recording MigrationBuilder (nothing reaches a database), its createTable,
 * dropTable, renameTable, addColumns, dropColumns, renameColumn, alterColumn(type) and plain `sql` statements
 * read into changes (sql-data-changes.ts), and what the migration states itself (`export const dataChanges`)
 * added. What cannot be read is listed as `unread`; the upgrade's gate measures it anyway.
 */

type Recorded = { changes: DataChange[]; unread: string[] };

/** A table argument of node-pg-migrate: a name, or { schema, name }; undefined for another schema than public. */
function tableName(arg: unknown): string | undefined {
  if (typeof arg === "string") {
    const dot = arg.indexOf(".");
    if (dot < 0) return arg;
    return arg.slice(0, dot) === "public" ? arg.slice(dot + 1) : undefined;
  }
  if (arg && typeof arg === "object" && "name" in arg) {
    const { schema, name } = arg as { schema?: string; name: string };
    return !schema || schema === "public" ? name : undefined;
  }
  return undefined;
}

/** Column names of addColumns / dropColumns: an object of columns, an array or one name. */
function columnNames(arg: unknown): string[] {
  if (typeof arg === "string") return [arg];
  if (Array.isArray(arg)) return arg.filter((c): c is string => typeof c === "string");
  if (arg && typeof arg === "object") return Object.keys(arg);
  return [];
}

/** Calls that change no row: the schema around the data, or nothing at all. */
const QUIET = /^(create|drop|alter|rename|add|set|grant|revoke|refresh|noTransaction|timestamp|value)/;

/** A MigrationBuilder that records what a migration would do to the data. */
function recordingBuilder(recorded: Recorded): unknown {
  const add = (c: DataChange | undefined) => c && recorded.changes.push(c);
  const on = (table: unknown, make: (t: string) => DataChange | DataChange[]) => {
    const t = tableName(table);
    if (t !== undefined) for (const c of [make(t)].flat()) add(c);
  };
  const handlers: Record<string, (...args: unknown[]) => unknown> = {
    createTable: (table) => on(table, (t) => ({ change: "table-added", table: t })),
    dropTable: (table) => on(table, (t) => ({ change: "table-dropped", table: t })),
    renameTable: (table, to) => on(table, (t) => ({ change: "table-renamed", table: t, to: String(to) })),
    addColumns: (table, columns) => on(table, (t) => columnNames(columns).map((column) => ({ change: "column-added" as const, table: t, column }))),
    dropColumns: (table, columns) => on(table, (t) => columnNames(columns).map((column) => ({ change: "column-dropped" as const, table: t, column }))),
    renameColumn: (table, from, to) => on(table, (t) => ({ change: "column-renamed", table: t, column: String(from), to: String(to) })),
    alterColumn: (table, column, options) =>
      (options as { type?: unknown } | undefined)?.type !== undefined
        ? on(table, (t) => ({ change: "column-rewritten", table: t, column: String(column) }))
        : undefined,
    sql: (text) => {
      const read = readSql(String(text));
      recorded.changes.push(...read.changes);
      recorded.unread.push(...read.unread);
    },
    func: (text) => ({ toString: () => String(text) }),
  };
  handlers.addColumn = handlers.addColumns;
  handlers.dropColumn = handlers.dropColumns;
  const literal = (...args: unknown[]) => ({ toString: () => String(args[0]) });
  return new Proxy(
    {},
    {
      get(_target, prop) {
        if (typeof prop !== "string") return undefined;
        if (handlers[prop]) return handlers[prop];
        if (prop === "logger") return { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
        if (prop === "db")
          return new Proxy(
            {},
            {
              get: () => () => {
                recorded.unread.push("pgm.db: the migration queries the database itself");
                return Promise.resolve({ rows: [] });
              },
            },
          );
        if (QUIET.test(prop)) return literal;
        return (...args: unknown[]) => {
          recorded.unread.push(`pgm.${prop}(${args.map((a) => JSON.stringify(a) ?? "").join(", ")})`.slice(0, 200));
          return literal(...args);
        };
      },
    },
  );
}

function migrationFile(dir: string, name: string): string {
  for (const ext of [".ts", ".js"]) if (existsSync(path.join(dir, name + ext))) return path.join(dir, name + ext);
  throw new PlumError(`migration ${name} has no .ts or .js file in ${dir}`);
}

/** The changes a migration states itself (`export const dataChanges`), checked. */
function stated(name: string, value: unknown): DataChange[] {
  if (value === undefined) return [];
  const parsed = dataChangeSchema.array().safeParse(value);
  if (!parsed.success)
    throw new PlumError(
      `migration ${name} exports dataChanges the builder cannot use: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      { hint: 'export const dataChanges: DataChange[] = [{ change: "column-rewritten", table: "…", column: "…", note: "why" }] (lib/db/data-changes.ts)' },
    );
  return parsed.data;
}

const key = (c: DataChange) => `${c.change} ${c.table} ${c.column ?? ""} ${c.to ?? ""}`;

/** One migration's declaration: what its `up` shows (derived) and what it states, without repeats. */
export async function migrationDataChanges(file: string): Promise<MigrationDataChanges> {
  const name = path.basename(file).replace(/\.(ts|js)$/, "");
  let mod: { up?: unknown; dataChanges?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as typeof mod;
  } catch (err) {
    throw new PlumError(`cannot load migration ${name} to read what it changes in the data: ${(err as Error).message}`, {
      hint: "build bundles with `npm run bundle` (it loads the TypeScript migrations through tsx), from a tree that type-checks",
      cause: err,
    });
  }
  const recorded: Recorded = { changes: [], unread: [] };
  if (typeof mod.up === "function") {
    try {
      await mod.up(recordingBuilder(recorded));
    } catch (err) {
      recorded.unread.push(`up() could not be followed without a database: ${(err as Error).message}`.slice(0, 200));
    }
  }
  // The migration's own steps in order (the gate replays them: renames come before what follows them); a change
  // it also states carries the statement's note; what it states beyond them comes last.
  const own = stated(name, mod.dataChanges);
  const byKey = new Map(own.map((c) => [key(c), c]));
  const changes: DeclaredChange[] = [];
  const seen = new Set<string>();
  for (const c of recorded.changes) {
    if (seen.has(key(c))) continue;
    seen.add(key(c));
    const statedToo = byKey.get(key(c));
    changes.push(statedToo ? { ...statedToo, source: "stated" } : { ...c, source: "derived" });
  }
  for (const c of own) {
    if (seen.has(key(c))) continue;
    seen.add(key(c));
    changes.push({ ...c, source: "stated" });
  }
  return recorded.unread.length > 0 ? { changes, unread: recorded.unread } : { changes };
}

/** Every product migration's declaration in `dir`, by name (the manifest's `dataChanges`). */
export async function releaseDataChanges(dir: string): Promise<Record<string, MigrationDataChanges>> {
  const out: Record<string, MigrationDataChanges> = {};
  for (const name of migrationNames(dir)) out[name] = await migrationDataChanges(migrationFile(dir, name));
  return out;
}
