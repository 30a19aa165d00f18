import { randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLogger } from "../../lib/logger.ts";
import { EmbeddedPostgres } from "../../lib/db/embedded-postgres.ts";
import { createTemplateDatabases } from "./databases.ts";
import {
  startTestDockerEngine,
  stopTestDockerEngine,
  TEST_DOCKER_GATEWAY_ENV,
  TEST_DOCKER_NETWORK_ENV,
  TEST_DOCKER_SOCKET_ENV,
  TEST_DOCKER_SUBNET_ENV,
  type TestDockerEngine,
} from "./docker-engine.ts";
import { freePort } from "./ports.ts";
import { RUN_DIR_ENV } from "./run-dir.ts";

/**
 * One real PostgreSQL 15 cluster for the whole test run (the embedded one the appliance ships), on a free
 * loopback port, with migrated template databases. Suites clone their own databases from them. Mocha runs
 * this in its main process before it forks the --parallel workers, which inherit the PLUM_TEST_* it sets.
 */
let cluster: EmbeddedPostgres | undefined;
let dir: string | undefined;
let engine: TestDockerEngine | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  dir = mkdtempSync(path.join(tmpdir(), "plum-test-run-"));
  chmodSync(dir, 0o755);
  // The docker runtime's tests: one engine and one bridge network for the run; the test PostgreSQL listens on
  // that network's gateway too, where product containers reach it.
  engine = await startTestDockerEngine(dir);
  process.env[TEST_DOCKER_SOCKET_ENV] = engine.socketPath;
  process.env[TEST_DOCKER_NETWORK_ENV] = engine.network;
  process.env[TEST_DOCKER_GATEWAY_ENV] = engine.gateway;
  process.env[TEST_DOCKER_SUBNET_ENV] = engine.subnet;
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
    containerNetwork: { gateway: engine.gateway, subnet: engine.subnet },
  });
  await cluster.start();
  process.env.PLUM_TEST_PG_PORT = String(port);
  process.env.PLUM_TEST_PG_PASSWORD = password;
  process.env[RUN_DIR_ENV] = dir;
  process.env.PLUM_LOG_LEVEL ??= "warn";
  await createTemplateDatabases();
}

/*
 * Each test file's wall time, from its first hook to its last (in --parallel mode root hooks run once per
 * file, in its worker). The teardown prints the slowest, so a run's log says where its minutes went.
 */
const TIMINGS_FILE = "file-seconds.jsonl";
let fileStarted = 0;
let cpuStarted = 0;

/**
 * CPU seconds of this worker and of the children it has reaped (agents, restic, tar, tsc…), from
 * /proc/self/stat: fields utime, stime, cutime, cstime, in clock ticks (100 a second on Linux).
 */
function cpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0) / 100;
}

export const mochaHooks = {
  beforeAll(): void {
    fileStarted = Date.now();
    cpuStarted = cpuSeconds();
  },
  afterAll(this: Mocha.Context): void {
    const dir = process.env[RUN_DIR_ENV];
    const file = this.test?.parent?.suites[0]?.file;
    if (!dir || !file) return;
    const line = JSON.stringify({ file: path.relative(process.cwd(), file), seconds: (Date.now() - fileStarted) / 1000, cpu: cpuSeconds() - cpuStarted });
    appendFileSync(path.join(dir, TIMINGS_FILE), line + "\n");
  },
};

function printSlowestFiles(count: number): void {
  const file = dir && path.join(dir, TIMINGS_FILE);
  if (!file || !existsSync(file)) return;
  const rows = readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { file: string; seconds: number; cpu: number })
    .sort((a, b) => b.seconds - a.seconds);
  const lines = rows.slice(0, count).map((r) => `${r.seconds.toFixed(0).padStart(6)} s ${r.cpu.toFixed(0).padStart(6)} cpu-s  ${r.file}`);
  const cpu = rows.reduce((sum, r) => sum + r.cpu, 0);
  process.stdout.write(
    `\n  slowest of ${rows.length} test files: wall time (with the others running beside them), and CPU of the worker and its` +
      ` children (the shared PostgreSQL not counted; ${cpu.toFixed(0)} cpu-s in all)\n${lines.join("\n")}\n`,
  );
}

export async function mochaGlobalTeardown(): Promise<void> {
  printSlowestFiles(15);
  await cluster?.stop();
  if (engine) await stopTestDockerEngine(engine);
  if (dir) rmSync(dir, { recursive: true, force: true });
}
