import { randomBytes } from "node:crypto";
import pg from "pg";
import { clientConfig, connectionUrl, type PgServer } from "../../lib/db/database.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { OPS_MIGRATIONS_DIR, PRODUCT_MIGRATIONS_DIR } from "../../lib/version.ts";

/** The test run's PostgreSQL cluster (started by global-setup.ts). */
export function testServer(): PgServer {
  const port = Number(process.env.PLUM_TEST_PG_PORT);
  if (!port) throw new Error("PLUM_TEST_PG_PORT is not set: run the tests with `npm test` (mocha loads test/support/global-setup.ts)");
  return { host: "127.0.0.1", port, user: "postgres", password: process.env.PLUM_TEST_PG_PASSWORD ?? "", sslmode: "disable", embedded: false };
}

export interface FreshDatabases {
  server: PgServer;
  product: string;
  ops: string;
  /** Environment that points an agent or plumctl at these databases as its "external" PostgreSQL. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

async function admin<T>(server: PgServer, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(clientConfig(server, "postgres"));
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A fresh pair of databases (product + ops) for one suite; `migrated` runs both migration sets. */
export async function freshDatabases(opts: { migrated?: boolean } = {}): Promise<FreshDatabases> {
  const server = testServer();
  const suffix = randomBytes(4).toString("hex");
  const product = `t_plum_${suffix}`;
  const ops = `t_ops_${suffix}`;
  await admin(server, async (c) => {
    await c.query(`create database ${product}`);
    await c.query(`create database ${ops}`);
  });
  if (opts.migrated) {
    await migrate({ clientConfig: clientConfig(server, ops), dir: OPS_MIGRATIONS_DIR });
    await migrate({ clientConfig: clientConfig(server, product), dir: PRODUCT_MIGRATIONS_DIR });
  }
  return {
    server,
    product,
    ops,
    env: { PLUM_DATABASE_URL: connectionUrl(server, "postgres"), PLUM_PRODUCT_DATABASE: product, PLUM_OPS_DATABASE: ops },
    drop: () =>
      admin(server, async (c) => {
        await c.query(`drop database if exists ${product} with (force)`);
        await c.query(`drop database if exists ${ops} with (force)`);
      }),
  };
}
