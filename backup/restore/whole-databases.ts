import pg from "pg";
import { PlumError } from "../../lib/errors.ts";
import { sleep } from "../../lib/wait.ts";
import { clientConfig, connectAdmin, type PgServer } from "../../lib/db/database.ts";
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

/** A new empty database; fails when one by that name already exists (a restore never writes into a database it did not make). */
export function createEmptyDatabase(server: PgServer, name: string): Promise<void> {
  return withAdmin(server, async (c) => {
    await c.query(`create database ${pg.escapeIdentifier(name)} template template0`);
  });
}

export function dropDatabase(server: PgServer, name: string): Promise<void> {
  return withAdmin(server, async (c) => {
    await c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  });
}

const OBJECT_IN_USE = "55006";

/**
 * Rename a database, terminating its connections first. A client may reconnect between the terminate and the
 * rename (a pool refilling), so the pair is retried until `timeoutMs`; the last refusal is reported.
 */
export function renameDatabase(server: PgServer, from: string, to: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  return withAdmin(server, async (c) => {
    for (let attempt = 1; ; attempt++) {
      await c.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()", [from]);
      try {
        await c.query(`alter database ${pg.escapeIdentifier(from)} rename to ${pg.escapeIdentifier(to)}`);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== OBJECT_IN_USE || Date.now() > deadline) {
          throw new PlumError(`could not rename database "${from}" to "${to}" (attempt ${attempt}): ${(err as Error).message}`, {
            hint: `stop whatever keeps connecting to "${from}" and run the restore again`,
            cause: err,
          });
        }
        await sleep(Math.min(50 * attempt, 500));
      }
    }
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
