import { runner } from "node-pg-migrate";
import pg from "pg";
import { PlumError } from "../errors.ts";
import type { Logger } from "../logger.ts";

export const MIGRATIONS_TABLE = "pgmigrations";
const IGNORE = "(\\..*|.*\\.d\\.ts|.*\\.map)";

/** Apply (up) or undo (down, `count` steps) the migrations of one database. Returns the names run. */
export async function migrate(opts: {
  clientConfig: pg.ClientConfig;
  dir: string;
  direction?: "up" | "down";
  count?: number;
  log?: Logger;
}): Promise<string[]> {
  const direction = opts.direction ?? "up";
  try {
    const done = await runner({
      databaseUrl: opts.clientConfig,
      dir: opts.dir,
      ignorePattern: IGNORE,
      direction,
      count: opts.count ?? (direction === "up" ? Infinity : 1),
      migrationsTable: MIGRATIONS_TABLE,
      checkOrder: true,
      advisoryLockMode: "wait",
      log: (msg: string) => opts.log?.debug({ migrations: opts.dir }, msg),
      logger: {
        debug: (m: string) => opts.log?.debug(m),
        info: (m: string) => opts.log?.debug(m),
        warn: (m: string) => opts.log?.warn(m),
        error: (m: string) => opts.log?.error(m),
      },
    });
    return done.map((m) => m.name);
  } catch (err) {
    throw new PlumError(`migrations (${direction}) in ${opts.dir} failed on database "${opts.clientConfig.database}": ${(err as Error).message}`, {
      hint: "nothing after the failing migration was applied; fix the cause and start again",
      cause: err,
    });
  }
}

/** The newest migration applied to a database, or "none". */
export async function appliedSchemaVersion(client: pg.ClientBase): Promise<string> {
  const exists = await client.query("select to_regclass($1) as t", [MIGRATIONS_TABLE]);
  if (!exists.rows[0].t) return "none";
  const { rows } = await client.query<{ name: string }>(`select name from ${MIGRATIONS_TABLE} order by run_on desc, id desc limit 1`);
  return rows[0]?.name ?? "none";
}
