import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLogger } from "../../lib/logger.ts";
import { EmbeddedPostgres } from "../../lib/db/embedded-postgres.ts";
import { freePort } from "./ports.ts";

/**
 * One real PostgreSQL 15 cluster for the whole test run (the embedded one the appliance ships), on a free
 * loopback port. Suites make their own databases in it. Its address is passed on in PLUM_TEST_PG_*.
 */
let cluster: EmbeddedPostgres | undefined;
let dir: string | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  dir = mkdtempSync(path.join(tmpdir(), "plum-test-pg-"));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const password = randomBytes(18).toString("base64url");
  cluster = new EmbeddedPostgres({
    dataDir: path.join(dir, "data"),
    port,
    password,
    logFile: path.join(dir, "postgres.log"),
    log: createLogger("test-postgres", { level: "warn" }),
  });
  await cluster.start();
  process.env.PLUM_TEST_PG_PORT = String(port);
  process.env.PLUM_TEST_PG_PASSWORD = password;
  process.env.PLUM_LOG_LEVEL ??= "warn";
}

export async function mochaGlobalTeardown(): Promise<void> {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
