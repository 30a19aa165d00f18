import pg from "pg";
import { clientConfig } from "../../lib/db/database.ts";
import type { FreshDatabases } from "./databases.ts";

/** The rows a query finds in a suite's ops database (audit log, backup catalogue), on a connection of its own. */
export async function opsRows<T extends pg.QueryResultRow>(dbs: FreshDatabases, sql: string): Promise<T[]> {
  const client = new pg.Client(clientConfig(dbs.server, dbs.ops));
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}
