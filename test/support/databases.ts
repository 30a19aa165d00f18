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
  /** This set's own product roles: roles are cluster-wide, and suites run side by side on one cluster. */
  roles: { app: string; migrate: string };
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

/** Names of the migrated template databases (global setup makes them once per run; workers see the env). */
const TEMPLATES_ENV = { product: "PLUM_TEST_PG_PRODUCT_TEMPLATE", ops: "PLUM_TEST_PG_OPS_TEMPLATE" } as const;

/**
 * Migrate a product and an ops database once, as templates: a suite's `create database … template …` copies
 * them in a fraction of the time both migration sets take. Closed to connections, so a clone never waits.
 */
export async function createTemplateDatabases(): Promise<void> {
  const server = testServer();
  const suffix = randomBytes(4).toString("hex");
  const names = { product: `t_tpl_plum_${suffix}`, ops: `t_tpl_ops_${suffix}` };
  await admin(server, async (c) => {
    await c.query(`create database ${names.product}`);
    await c.query(`create database ${names.ops}`);
  });
  await migrate({ clientConfig: clientConfig(server, names.ops), dir: OPS_MIGRATIONS_DIR });
  await migrate({ clientConfig: clientConfig(server, names.product), dir: PRODUCT_MIGRATIONS_DIR });
  await admin(server, async (c) => {
    for (const name of Object.values(names)) await c.query(`alter database ${name} with is_template true allow_connections false`);
  });
  process.env[TEMPLATES_ENV.product] = names.product;
  process.env[TEMPLATES_ENV.ops] = names.ops;
}

function template(db: keyof typeof TEMPLATES_ENV): string {
  const name = process.env[TEMPLATES_ENV[db]];
  if (!name) throw new Error(`${TEMPLATES_ENV[db]} is not set: run the tests with mocha (global-setup.ts makes the template databases)`);
  return name;
}

/**
 * A fresh pair of databases (product + ops) for one suite. `migrated`: copies of the migrated templates,
 * what an agent leaves after its first start (an agent started on them finds nothing to migrate).
 */
export async function freshDatabases(opts: { migrated?: boolean } = {}): Promise<FreshDatabases> {
  const server = testServer();
  const suffix = randomBytes(4).toString("hex");
  const product = `t_plum_${suffix}`;
  const ops = `t_ops_${suffix}`;
  const roles = { app: `t_app_${suffix}`, migrate: `t_migrate_${suffix}` };
  const from = (db: keyof typeof TEMPLATES_ENV) => (opts.migrated ? ` template ${template(db)}` : "");
  await admin(server, async (c) => {
    await c.query(`create database ${product}${from("product")}`);
    await c.query(`create database ${ops}${from("ops")}`);
  });
  return {
    server,
    product,
    ops,
    roles,
    env: {
      PLUM_DATABASE_URL: connectionUrl(server, "postgres"),
      PLUM_PRODUCT_DATABASE: product,
      PLUM_OPS_DATABASE: ops,
      PLUM_DATABASE_APP_ROLE: roles.app,
      PLUM_DATABASE_MIGRATE_ROLE: roles.migrate,
    },
    drop: () =>
      admin(server, async (c) => {
        await c.query(`drop database if exists ${product} with (force)`);
        await c.query(`drop database if exists ${ops} with (force)`);
        // A role goes once nothing of it is left; a copy a suite left behind (a kept restore) keeps it, harmlessly.
        for (const role of Object.values(roles)) await c.query(`drop role if exists ${role}`).catch(() => undefined);
      }),
  };
}
