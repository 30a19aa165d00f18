import pg from "pg";
import type { PlumConfig } from "../config.ts";
import { PlumError } from "../errors.ts";
import { clientConfig, parseDatabaseUrl, type PgConnection } from "./connection-url.ts";

/** Where PostgreSQL is and how to log in; the same shape for the embedded server and the client's own. */
export interface PgServer extends Omit<PgConnection, "database"> {
  embedded: boolean;
}

/** The configured server: the client's own from database.url, else the embedded one (loopback, no TLS). */
export function pgServerFor(config: PlumConfig, embeddedPassword: string): PgServer {
  if (!config.database.url) {
    return { host: "127.0.0.1", port: config.database.embedded.port, user: "postgres", password: embeddedPassword, sslmode: "disable", embedded: true };
  }
  const { database: _database, ...server } = parseDatabaseUrl(config.database.url, "database.url");
  return { ...server, embedded: false };
}

// Callers open servers here; the URL's own forms live with the parser.
export { clientConfig, connectionUrl, pgEnvironment } from "./connection-url.ts";

export const MINIMUM_SERVER_VERSION = 150000;

function where(server: PgServer): string {
  return `${server.host}:${server.port}`;
}

/** Connect to the server's maintenance database with a clear error for the usual ways this fails. */
export async function connectAdmin(server: PgServer): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(server, "postgres"));
  client.on("error", () => undefined);
  try {
    await client.connect();
    return client;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { code?: string };
    const hint = server.embedded
      ? "the embedded PostgreSQL is not running: start the appliance with `npm start` (or `plumctl agent`)"
      : e.code === "28P01"
        ? "check the user and password in database.url / PLUM_DATABASE_URL"
        : "check database.url / PLUM_DATABASE_URL, that the server listens on that address, and that pg_hba.conf admits this host";
    throw new PlumError(`cannot reach PostgreSQL at ${where(server)}: ${e.message}`, { hint, cause: err });
  }
}

/** Check the server's version, then create the databases that are missing. */
export async function prepareServer(server: PgServer, databases: string[]): Promise<{ version: string }> {
  const client = await connectAdmin(server);
  try {
    const { rows } = await client.query<{ v: string; n: string }>("select current_setting('server_version') as v, current_setting('server_version_num') as n");
    const { v, n } = rows[0];
    if (Number(n) < MINIMUM_SERVER_VERSION) {
      throw new PlumError(`PostgreSQL ${v} at ${where(server)} is too old: plum-appliance needs PostgreSQL 15 or newer`, {
        hint: "upgrade the server, or leave database.url unset to use the embedded PostgreSQL 15",
      });
    }
    for (const name of databases) {
      const exists = await client.query("select 1 from pg_database where datname = $1", [name]);
      if (exists.rowCount === 0) {
        try {
          await client.query(`create database ${pg.escapeIdentifier(name)}`);
        } catch (err) {
          throw new PlumError(`database "${name}" does not exist at ${where(server)} and could not be created: ${(err as Error).message}`, {
            hint: `create it (CREATE DATABASE ${name} OWNER ${server.user}) or grant CREATEDB to ${server.user}`,
          });
        }
      }
    }
    return { version: v };
  } finally {
    await client.end();
  }
}
