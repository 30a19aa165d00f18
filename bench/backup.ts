// Backup sets against raw restic on the same data, in one run: the appliance's set vs `pg_dump -Fc | restic
// backup --stdin` (both databases) plus `restic backup` of the files; a second set with nothing changed; and a
// restore (restic dump | pg_restore into a new database + files, verified against the manifest) vs the raw
// commands. Prints figures and ratios; asserts nothing. Loopback only; stops by itself.
// Run: npx tsx bench/backup.ts   (BENCH_PARTICIPANTS, default 1,000,000 ≈ 1 GB; BENCH_FILES_MB, default 500)
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { backupContextFor } from "../backup/backup-context.ts";
import { productionReleaseAtRest } from "../appliance/releases/production-release.ts";
import { scratchRestorer } from "../backup/restore/scratch-restorer.ts";
import { dropDatabase } from "../backup/restore/whole-databases.ts";
import { Restic } from "../backup/restic/restic.ts";
import { backupSetCreator } from "../backup/sets/backup-set-creator.ts";
import { childFailure, runChild, startChild } from "../lib/child-process.ts";
import { loadConfig } from "../lib/config.ts";
import { prepareHome } from "../lib/home.ts";
import { createLogger } from "../lib/logger.ts";
import { OPS_MIGRATIONS_DIR } from "../lib/version.ts";
import { clientConfig, connectionUrl, prepareServer } from "../lib/db/database.ts";
import { migrate } from "../lib/db/migrate.ts";
import { openSequelize } from "../lib/db/sequelize.ts";
import { demoDataLoader } from "../product/demo/demo-data.ts";
import { benchDatabase, fmt } from "./support.ts";

const PARTICIPANTS = Number(process.env.BENCH_PARTICIPANTS ?? 1_000_000);
const FILES_MB = Number(process.env.BENCH_FILES_MB ?? 500);
const log = createLogger("bench", { level: "warn" });

async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await work();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, value };
}

const BENCH_DEADLINE_MS = 2 * 60 * 60_000;

/** `producer | consumer`, both as argument arrays, failing if either fails. */
async function pipe(producer: string[], consumer: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const a = startChild(producer, { env, stdout: "pipe", timeoutMs: BENCH_DEADLINE_MS });
  const b = startChild(consumer, { env, stdin: a.stdout!, stdout: "ignore", timeoutMs: BENCH_DEADLINE_MS });
  for (const exit of await Promise.all([a.exit, b.exit])) if (exit.exitCode !== 0) throw childFailure(exit, exit.command[0]);
}

async function run(cmd: string[], env: NodeJS.ProcessEnv): Promise<void> {
  await runChild(cmd, { env, stdout: "ignore", timeoutMs: BENCH_DEADLINE_MS });
}

const db = await benchDatabase();
const home = mkdtempSync(path.join(tmpdir(), "plum-bench-home-"));
try {
  await prepareServer(db.server, ["plum_ops"]);
  await migrate({ clientConfig: clientConfig(db.server, "plum_ops"), dir: OPS_MIGRATIONS_DIR });
  const env = { PLUM_HOME: home, PLUM_DATABASE_URL: connectionUrl(db.server, "postgres"), PLUM_BACKUP_SCHEDULER: "false" };
  prepareHome(env);
  const config = loadConfig(env);
  const ops = openSequelize(clientConfig(db.server, "plum_ops"), { poolMax: 3 });
  const product = openSequelize(clientConfig(db.server, "plum"), { poolMax: 3 });
  const ctx = backupContextFor({ config, log, pg: db.server, opsSequelize: ops, production: () => productionReleaseAtRest(config, ops) });

  process.stdout.write(`generating ${PARTICIPANTS.toLocaleString("en-GB")} participants of demo data and ${FILES_MB} MiB of files…\n`);
  await demoDataLoader(product, { participants: PARTICIPANTS });
  const [[{ size }]] = (await product.query("select pg_database_size('plum') as size")) as unknown as [[{ size: string }]];
  mkdirSync(ctx.filesDir, { recursive: true });
  for (let i = 0; i < FILES_MB; i++) writeFileSync(path.join(ctx.filesDir, `upload-${i}.bin`), randomBytes(2 ** 20));
  process.stdout.write(`database: ${fmt(Number(size) / 2 ** 20, 0)} MiB, files: ${FILES_MB} MiB\n\n`);

  // The raw commands, into their own repository, with the same password file and PGPASSWORD.
  const rawRepo = path.join(home, "raw-repo");
  const rawEnv = { ...process.env, RESTIC_REPOSITORY: rawRepo, RESTIC_PASSWORD_FILE: ctx.repos.primary.passwordFile, PGPASSWORD: db.server.password };
  const pgArgs = ["--host", db.server.host, "--port", String(db.server.port), "--username", db.server.user];
  await run(["restic", "init"], rawEnv);
  const raw = await timed(async () => {
    await pipe(["pg_dump", "-Fc", ...pgArgs, "plum"], ["restic", "backup", "--stdin", "--stdin-filename", "plum.dump"], rawEnv);
    await pipe(["pg_dump", "-Fc", ...pgArgs, "plum_ops"], ["restic", "backup", "--stdin", "--stdin-filename", "plum_ops.dump"], rawEnv);
    await run(["restic", "backup", ctx.filesDir], rawEnv);
  });
  const restic = new Restic({ log });
  await restic.init(ctx.repos.primary);
  const first = await timed(() => backupSetCreator({ ctx, kind: "manual", startedBy: "bench", restic }));
  const second = await timed(() => backupSetCreator({ ctx, kind: "manual", startedBy: "bench", restic }));
  if (first.value.status !== "succeeded" || second.value.status !== "succeeded") throw new Error(`a set failed: ${first.value.error ?? second.value.error}`);

  const rawTarget = path.join(home, "raw-restore");
  const rawRestore = await timed(async () => {
    await run(["createdb", ...pgArgs, "raw_restore"], rawEnv);
    await pipe(["restic", "dump", "latest", "/plum.dump", "--path", "/plum.dump"], ["pg_restore", "--no-owner", ...pgArgs, "--dbname", "raw_restore"], rawEnv);
    await run(["restic", "restore", "latest", "--path", ctx.filesDir, "--target", rawTarget], rawEnv);
  });
  const target = path.join(home, "appliance-restore");
  const applianceRestore = await timed(() =>
    scratchRestorer({ ctx, restic, set: second.value, repo: ctx.repos.primary, target: { database: "appliance_restore", filesTarget: target } }),
  );
  const verified = applianceRestore.value.checks.every((c) => c.passed);
  await dropDatabase(db.server, "appliance_restore");
  await dropDatabase(db.server, "raw_restore");

  const line = (name: string, s: number, note = "") => process.stdout.write(`${name.padEnd(46)} ${fmt(s, 2).padStart(8)} s${note}\n`);
  line("raw: pg_dump | restic --stdin ×2 + restic backup", raw.seconds);
  line("appliance backup set (first, cold repository)", first.seconds, `   ratio ${fmt(first.seconds / raw.seconds, 2)}× (target ≤ 1.10×)`);
  line("appliance backup set (nothing changed)", second.seconds, `   (target ≤ 3 s)`);
  line("raw: restic dump | pg_restore + restic restore", rawRestore.seconds);
  line(
    "appliance restore into a new database + files",
    applianceRestore.seconds,
    `   ratio ${fmt(applianceRestore.seconds / rawRestore.seconds, 2)}× (target ≤ 1.25×), verified against the manifest: ${verified ? "yes" : "NO"}`,
  );
  await ops.close();
  await product.close();
} finally {
  await db.stop();
  rmSync(home, { recursive: true, force: true });
}
