import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLogger } from "../../lib/logger.ts";
import { EmbeddedPostgres } from "../../lib/db/embedded-postgres.ts";
import { createTemplateDatabases } from "./databases.ts";
import { freePort } from "./ports.ts";
import { RUN_DIR_ENV } from "./run-dir.ts";

/**
 * One real PostgreSQL 15 cluster for the whole test run (the embedded one the appliance ships), on a free
 * loopback port, with migrated template databases. Suites clone their own databases from them. Mocha runs
 * this in its main process before it forks the --parallel workers, which inherit the PLUM_TEST_* it sets.
 */
let cluster: EmbeddedPostgres | undefined;
let dir: string | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  dir = mkdtempSync(path.join(tmpdir(), "plum-test-run-"));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const password = randomBytes(18).toString("base64url");
  cluster = new EmbeddedPostgres({
    dataDir: path.join(dir, "data"),
    port,
    password,
    logFile: path.join(dir, "postgres.log"),
    log: createLogger("test-postgres", { level: "warn" }),
    // A throwaway cluster: no test asserts durability across a crash of this server, so it skips the fsyncs
    // (each CREATE DATABASE and checkpoint would wait for the disk). Agents' own embedded servers keep them.
    settings: { fsync: "off", synchronous_commit: "off", full_page_writes: "off" },
  });
  await cluster.start();
  process.env.PLUM_TEST_PG_PORT = String(port);
  process.env.PLUM_TEST_PG_PASSWORD = password;
  process.env[RUN_DIR_ENV] = dir;
  process.env.PLUM_LOG_LEVEL ??= "warn";
  await createTemplateDatabases();
}

export async function mochaGlobalTeardown(): Promise<void> {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
