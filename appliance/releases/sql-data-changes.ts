import type { DataChange } from "../../lib/db/data-changes.ts";

/**
 * What plain SQL in a migration (`pgm.sql(…)`) changes in the data, read statement by statement: CREATE/DROP/
 * ALTER TABLE, UPDATE … SET, DELETE, INSERT, TRUNCATE. Statements known to change no rows (indexes, functions,
 * triggers, comments, grants, constraints, defaults) are passed over; anything else is returned as unread, for
 * the release author to declare and for the admin to see. Only the `public` schema is the product's.
 */

type Token = { kind: "word" | "ident" | "string" | "punct" | "other"; text: string };

/** Split SQL into statements at top-level semicolons, skipping comments, quoted text and dollar-quoted bodies. */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = "";
  let i = 0;
  while (i < sql.length) {
    const rest = sql.slice(i);
    const dollar = /^\$([A-Za-z_]\w*)?\$/.exec(rest);
    if (rest.startsWith("--")) {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end + 1;
      current += " ";
    } else if (rest.startsWith("/*")) {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 2;
      current += " ";
    } else if (dollar) {
      const end = sql.indexOf(dollar[0], i + dollar[0].length);
      const stop = end < 0 ? sql.length : end + dollar[0].length;
      current += sql.slice(i, stop);
      i = stop;
    } else if (sql[i] === "'" || sql[i] === '"') {
      const quote = sql[i];
      let j = i + 1;
      while (j < sql.length && !(sql[j] === quote && sql[j + 1] !== quote)) j += sql[j] === quote ? 2 : 1;
      current += sql.slice(i, j + 1);
      i = j + 1;
    } else if (sql[i] === ";") {
      if (current.trim()) statements.push(current.trim());
      current = "";
      i++;
    } else {
      current += sql[i];
      i++;
    }
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}

function tokenize(statement: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s+|([A-Za-z_][\w$]*)|"((?:[^"]|"")*)"|'((?:[^']|'')*)'|(\$([A-Za-z_]\w*)?\$[\s\S]*?\$\5\$)|([(),.;=*])|(\S)/y;
  let m: RegExpExecArray | null;
  while ((m = re.exec(statement))) {
    if (m[1]) tokens.push({ kind: "word", text: m[1].toLowerCase() });
    else if (m[2] !== undefined) tokens.push({ kind: "ident", text: m[2].replace(/""/g, '"') });
    else if (m[3] !== undefined || m[4]) tokens.push({ kind: "string", text: m[3] ?? m[4] });
    else if (m[6]) tokens.push({ kind: "punct", text: m[6] });
    else if (m[7]) tokens.push({ kind: "other", text: m[7] });
  }
  return tokens;
}

/** A cursor over a statement's tokens. */
class Tokens {
  at = 0;
  constructor(readonly list: Token[]) {}
  peek(offset = 0): Token | undefined {
    return this.list[this.at + offset];
  }
  word(...words: string[]): boolean {
    const t = this.peek();
    if (t?.kind === "word" && words.includes(t.text)) {
      this.at++;
      return true;
    }
    return false;
  }
  words(...sequence: string[]): boolean {
    if (!sequence.every((w, k) => this.peek(k)?.kind === "word" && this.peek(k)?.text === w)) return false;
    this.at += sequence.length;
    return true;
  }
  punct(p: string): boolean {
    if (this.peek()?.kind === "punct" && this.peek()?.text === p) {
      this.at++;
      return true;
    }
    return false;
  }
  /** An identifier (a word or a quoted name). */
  name(): string | undefined {
    const t = this.peek();
    if (t?.kind === "word" || t?.kind === "ident") {
      this.at++;
      return t.text;
    }
    return undefined;
  }
  /** A table name, schema-qualified or not; undefined for another schema than public (not the product's). */
  table(): { name: string } | { elsewhere: true } | undefined {
    const first = this.name();
    if (first === undefined) return undefined;
    if (this.punct(".")) {
      const second = this.name();
      if (second === undefined) return undefined;
      return first === "public" ? { name: second } : { elsewhere: true };
    }
    return { name: first };
  }
  /** Tokens up to the next top-level comma (or the end), as groups. */
  commaSeparated(stopWords: string[] = []): Token[][] {
    const groups: Token[][] = [[]];
    let depth = 0;
    while (this.peek()) {
      const t = this.peek()!;
      if (depth === 0 && t.kind === "word" && stopWords.includes(t.text)) break;
      this.at++;
      if (t.kind === "punct" && t.text === "(") depth++;
      if (t.kind === "punct" && t.text === ")") depth--;
      if (depth === 0 && t.kind === "punct" && t.text === ",") groups.push([]);
      else groups.at(-1)!.push(t);
    }
    return groups.filter((g) => g.length > 0);
  }
}

/** Statements that change no row of a product table, by their first words. */
const NO_DATA_CHANGE = [
  /^create (unique )?index/,
  /^drop index/,
  /^alter index/,
  /^create (or replace )?(function|procedure|view|trigger|constraint trigger|rule)/,
  /^drop (function|procedure|view|trigger|rule|type|domain|sequence|extension|schema)/,
  /^alter (function|procedure|view|sequence|type|domain|schema|trigger)/,
  /^create (type|domain|sequence|extension|schema|policy)/,
  /^(comment|grant|revoke|analyze|vacuum|reindex|set|reset|lock) /,
  /^select (pg_catalog\.)?setval ?\(/,
];

export interface ReadSql {
  changes: DataChange[];
  unread: string[];
}

/** The data changes plain SQL makes (see above); `unread` holds the statements it cannot tell about. */
export function readSql(sql: string): ReadSql {
  const out: ReadSql = { changes: [], unread: [] };
  for (const statement of splitStatements(sql)) {
    const t = new Tokens(tokenize(statement));
    const head = t.list
      .slice(0, 6)
      .map((x) => x.text)
      .join(" ")
      .replace(/ \. /g, ".")
      .replace(/ \(/g, " (");
    if (NO_DATA_CHANGE.some((re) => re.test(head))) continue;
    const read = readStatement(t);
    if (read === undefined) out.unread.push(statement.replace(/\s+/g, " ").slice(0, 200));
    else out.changes.push(...read);
  }
  return out;
}

function readStatement(t: Tokens): DataChange[] | undefined {
  if (t.word("create")) {
    if (t.word("temp", "temporary")) return [];
    t.word("unlogged");
    if (!t.word("table")) return undefined;
    t.words("if", "not", "exists");
    const table = t.table();
    if (!table) return undefined;
    return "elsewhere" in table ? [] : [{ change: "table-added", table: table.name }];
  }
  if (t.words("drop", "table")) {
    t.words("if", "exists");
    const names = t.commaSeparated(["cascade", "restrict"]);
    return names.flatMap((g) => {
      const one = new Tokens(g).table();
      return one && "name" in one ? [{ change: "table-dropped" as const, table: one.name }] : [];
    });
  }
  if (t.words("alter", "table")) return readAlterTable(t);
  if (t.word("update")) {
    t.word("only");
    const table = t.table();
    if (!table) return undefined;
    if ("elsewhere" in table) return [];
    if (!t.word("set")) {
      t.word("as");
      t.name();
      if (!t.word("set")) return undefined;
    }
    return setColumns(t, table.name);
  }
  if (t.words("delete", "from")) {
    t.word("only");
    const table = t.table();
    if (!table) return undefined;
    return "elsewhere" in table ? [] : [{ change: "rows-deleted", table: table.name }];
  }
  if (t.words("insert", "into")) {
    const table = t.table();
    if (!table) return undefined;
    if ("elsewhere" in table) return [];
    const changes: DataChange[] = [{ change: "rows-inserted", table: table.name }];
    // An upsert also rewrites the columns it sets on conflict.
    const upsert = t.list.findIndex((x, k) => x.text === "do" && t.list[k + 1]?.text === "update" && t.list[k + 2]?.text === "set");
    if (upsert >= 0) {
      t.at = upsert + 3;
      changes.push(...setColumns(t, table.name));
    }
    return changes;
  }
  if (t.word("truncate")) {
    t.word("table");
    t.word("only");
    const names = t.commaSeparated(["restart", "continue", "cascade", "restrict"]);
    return names.flatMap((g) => {
      const one = new Tokens(g).table();
      return one && "name" in one ? [{ change: "rows-deleted" as const, table: one.name }] : [];
    });
  }
  return undefined;
}

/** `SET a = …, (b, c) = …` up to FROM / WHERE / RETURNING: every column set is rewritten. */
function setColumns(t: Tokens, table: string): DataChange[] {
  const columns: string[] = [];
  for (const group of t.commaSeparated(["from", "where", "returning"])) {
    const g = new Tokens(group);
    if (g.punct("(")) {
      for (const inner of g.commaSeparated()) {
        const name = new Tokens(inner.filter((x) => x.text !== ")")).name();
        if (name) columns.push(name);
      }
    } else {
      const name = g.name();
      if (name) columns.push(name);
    }
  }
  return columns.map((column) => ({ change: "column-rewritten", table, column }));
}

const CONSTRAINT_WORDS = ["constraint", "primary", "unique", "check", "foreign", "exclude"];

function readAlterTable(t: Tokens): DataChange[] | undefined {
  t.words("if", "exists");
  t.word("only");
  const target = t.table();
  if (!target) return undefined;
  if ("elsewhere" in target) return [];
  const table = target.name;
  if (t.word("rename")) {
    if (t.word("to")) {
      const to = t.name();
      return to ? [{ change: "table-renamed", table, to }] : undefined;
    }
    if (t.word("constraint")) return [];
    t.word("column");
    const from = t.name();
    if (!from || !t.word("to")) return undefined;
    const to = t.name();
    return to ? [{ change: "column-renamed", table, column: from, to }] : undefined;
  }
  const changes: DataChange[] = [];
  for (const action of t.commaSeparated()) {
    const a = new Tokens(action);
    if (a.word("add")) {
      if (CONSTRAINT_WORDS.includes(a.peek()?.text ?? "")) continue;
      a.word("column");
      a.words("if", "not", "exists");
      const column = a.name();
      if (!column) return undefined;
      changes.push({ change: "column-added", table, column });
    } else if (a.word("drop")) {
      if (a.peek()?.text === "constraint") continue;
      a.word("column");
      a.words("if", "exists");
      const column = a.name();
      if (!column) return undefined;
      changes.push({ change: "column-dropped", table, column });
    } else if (a.word("alter")) {
      if (a.peek()?.text === "constraint") continue;
      a.word("column");
      const column = a.name();
      if (!column) return undefined;
      // A new type rewrites the values (USING …); defaults, NOT NULL, statistics and storage change none.
      if (a.words("type") || a.words("set", "data", "type")) changes.push({ change: "column-rewritten", table, column });
    } else if (a.word("validate", "enable", "disable", "owner", "set", "reset", "cluster", "inherit", "no", "replica", "force", "attach", "detach")) {
      continue;
    } else return undefined;
  }
  return changes;
}
