import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Sequelize } from "sequelize";
import { createLogger } from "../lib/logger.ts";
import { createProductApp, type ProductAppDeps } from "../product/app.ts";
import { PRODUCT_MIGRATIONS_DIR } from "../lib/version.ts";
import { clientConfig, prepareServer, type PgServer } from "../lib/db/database.ts";
import { EmbeddedPostgres } from "../lib/db/embedded-postgres.ts";
import { migrate } from "../lib/db/migrate.ts";

/** A throwaway embedded PostgreSQL 15 with a migrated product database, for benchmarks. */
export async function benchDatabase(port = 55000 + Math.floor(Math.random() * 5000)): Promise<{ server: PgServer; database: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), "plum-bench-"));
  chmodSync(dir, 0o755);
  const password = "bench-only";
  const cluster = new EmbeddedPostgres({
    dataDir: path.join(dir, "data"),
    port,
    password,
    logFile: path.join(dir, "postgres.log"),
    log: createLogger("bench", { level: "warn" }),
  });
  await cluster.start();
  const server: PgServer = { host: "127.0.0.1", port, user: "postgres", password, sslmode: "disable", embedded: true };
  await prepareServer(server, ["plum"]);
  await migrate({ clientConfig: clientConfig(server, "plum"), dir: PRODUCT_MIGRATIONS_DIR });
  return {
    server,
    database: "plum",
    async stop() {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-GB", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** The product app over a bench database (the settings a run measures given in `tune`). */
export function benchProductApp(sequelize: Sequelize, tune: Partial<ProductAppDeps> & Pick<ProductAppDeps, "security">): ReturnType<typeof createProductApp> {
  return createProductApp({
    sequelize,
    logger: createLogger("bench", { level: "silent" }),
    slot: "production",
    sessionKey: Buffer.alloc(32, 1),
    secureCookies: true,
    sessionHours: 1,
    ...tune,
  });
}
