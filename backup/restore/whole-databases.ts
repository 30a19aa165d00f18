import pg from "pg";
import { PlumError } from "../../lib/errors.ts";
import { sleep } from "../../lib/wait.ts";
import { clientConfig, connectAdmin, type PgServer } from "../../lib/db/database.ts";
import { closeDatabase } from "../../lib/db/product-roles.ts";
import { exactRowCounts } from "../sets/backup-set-creator.ts";

/**
 * Create, drop and rename whole databases: what a restore does to put a verified copy in place.
 * Every name is quoted (pg.escapeIdentifier); connections are terminated first because PostgreSQL
 * refuses to rename or drop a database anyone is connected to.
 */
async function using<T>(connecting: Promise<pg.Client>, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connecting;
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function withAdmin<T>(server: PgServer, work: (client: pg.Client) => Promise<T>): Promise<T> {
  return using(connectAdmin(server), work);
}

export function databaseExists(server: PgServer, name: string): Promise<boolean> {
  return withAdmin(server, async (c) => (await c.query("select 1 from pg_database where datname = $1", [name])).rowCount === 1);
}

/**
 * A new empty database; fails when one by that name already exists (a restore never writes into a database it
 * did not make). Closed to PUBLIC: a copy is the agent's until it is given to the product's roles (product-roles.ts).
 */
export function createEmptyDatabase(server: PgServer, name: string): Promise<void> {
  return withAdmin(server, async (c) => {
    await c.query(`create database ${pg.escapeIdentifier(name)} template template0`);
    await closeDatabase(c, name);
  });
}

export function dropDatabase(server: PgServer, name: string): Promise<void> {
  return withAdmin(server, async (c) => {
    await c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  });
}

const OBJECT_IN_USE = "55006";

/**
 * Rename databases in ONE transaction: PostgreSQL allows `ALTER DATABASE … RENAME` in a transaction block
 * (CREATE and DROP DATABASE it does not), so a swap `plum → kept, restored → plum` commits whole or not at
 * all, and at every instant exactly one database is named `plum`. Each rename refuses while anyone is
 * connected to that database: the connections to the databases being renamed (only those) are terminated
 * first, and since a client may reconnect between the terminate and the rename (a pool refilling), the
 * transaction is retried until `timeoutMs`; the last refusal is reported.
 */
export function renameDatabases(server: PgServer, renames: Array<[from: string, to: string]>, opts: { timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  const froms = renames.map(([from]) => from);
  return withAdmin(server, async (c) => {
    for (let attempt = 1; ; attempt++) {
      await c.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = any($1) and pid <> pg_backend_pid()", [froms]);
      try {
        await c.query("begin");
        for (const [from, to] of renames) await c.query(`alter database ${pg.escapeIdentifier(from)} rename to ${pg.escapeIdentifier(to)}`);
        await c.query("commit");
        return;
      } catch (err) {
        await c.query("rollback").catch(() => undefined);
        if ((err as { code?: string }).code !== OBJECT_IN_USE || Date.now() > deadline) {
          const what = renames.map(([from, to]) => `"${from}" to "${to}"`).join(" and ");
          throw new PlumError(`could not rename ${what} (attempt ${attempt}): ${(err as Error).message}`, {
            hint: `stop whatever keeps connecting to ${froms.map((f) => `"${f}"`).join(" or ")} and run the restore again`,
            cause: err,
          });
        }
        await sleep(Math.min(50 * attempt, 500));
      }
    }
  });
}

/** Names of the server's databases that start with `prefix` (matched literally). */
export function databasesStartingWith(server: PgServer, prefix: string): Promise<string[]> {
  return withAdmin(server, async (c) => {
    const { rows } = await c.query<{ datname: string }>("select datname from pg_database where starts_with(datname, $1) order by 1", [prefix]);
    return rows.map((r) => r.datname);
  });
}

/** Exact row counts per table of a database, counted the way a set's manifest counts them. */
export function rowCountsOf(server: PgServer, database: string): Promise<Record<string, number>> {
  const client = new pg.Client(clientConfig(server, database));
  return using(
    client.connect().then(() => client),
    exactRowCounts,
  );
}
