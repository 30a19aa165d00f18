import { sha256OfFile } from "../../lib/file-hashes.ts";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import pg from "pg";
import { parseDocument } from "yaml";
import { childFailure, startChild } from "../../lib/child-process.ts";
import { ChildProcessError, PlumError } from "../../lib/errors.ts";
import { clientConfig, pgEnvironment, type PgServer } from "../../lib/db/database.ts";
import { effectiveConfigYaml, maskedDatabaseUrl } from "../../lib/effective-config.ts";
import { appliedSchemaVersion } from "../../lib/db/migrate.ts";
import { fingerprintInTransaction, type DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";
import type { BackupContext } from "../backup-context.ts";
import type { BackupSet } from "../backup-catalogue.ts";
import { DUMP_FILENAMES, EFFECTIVE_CONFIG_FILENAME, SET_STAGING_FOLDER, setTags, type SetKind, type SetManifest, type SetPart } from "../backup-types.ts";
import { oneAtATime } from "../restic/one-at-a-time.ts";
import { displayLocation, EmptySnapshotError, RepositoryMissingError, ResticError } from "../restic/restic-errors.ts";
import type { BackupProgress, BackupSummary } from "../restic/restic-output.ts";
import { DEFAULT_DEADLINES_MS, Restic } from "../restic/restic.ts";

export interface SetProgress {
  part: SetPart;
  progress: BackupProgress;
}

/** A set id: its start in UTC and 6 random hex digits, e.g. 20261123T082802-a1b2c3 (sorts by time). */
export function newSetId(at: Date): string {
  return `${at.toISOString().slice(0, 19).replace(/[-:]/g, "")}-${randomBytes(3).toString("hex")}`;
}

/** pg_dump failed: the set it was part of is not a good set, whatever restic made of the stream. */
export class DumpFailedError extends ChildProcessError {}

/** A database held at one instant: a REPEATABLE READ transaction whose snapshot pg_dump shares. */
interface HeldSnapshot {
  client: pg.Client;
  snapshotId: string;
  /** Row counts in the held snapshot, counted while the dumps run (awaited before the snapshot is let go). */
  counting?: Promise<Record<string, number>>;
  /** The product database only: content fingerprints in the held snapshot, taken after the counts, beside the dumps. */
  fingerprinting?: Promise<DatabaseFingerprint>;
}

/**
 * Exact row counts of every table of a database (partitions counted in their parent), as seen by the
 * client's transaction. Public tables by name, others as schema.table: what a restore is verified against.
 */
export async function exactRowCounts(client: pg.ClientBase): Promise<Record<string, number>> {
  const { rows } = await client.query<{ schema: string; name: string }>(
    `select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and not c.relispartition and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
      order by 1, 2`,
  );
  const counts: Record<string, number> = {};
  for (const { schema, name } of rows) {
    const qualified = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
    const result = await client.query<{ n: string }>(`select count(*) as n from ${qualified}`);
    counts[schema === "public" ? name : `${schema}.${name}`] = Number(result.rows[0].n);
  }
  return counts;
}

async function holdSnapshot(server: PgServer, database: string): Promise<HeldSnapshot> {
  const client = new pg.Client(clientConfig(server, database));
  client.on("error", () => undefined);
  await client.connect();
  try {
    await client.query("begin isolation level repeatable read, read only");
    const { rows } = await client.query<{ id: string }>("select pg_export_snapshot() as id");
    return { client, snapshotId: rows[0].id };
  } catch (err) {
    await client.end();
    throw err;
  }
}

async function releaseSnapshot(held: HeldSnapshot | undefined): Promise<void> {
  await held?.counting?.catch(() => undefined);
  await held?.fingerprinting?.catch(() => undefined);
  await held?.client.query("rollback").catch(() => undefined);
  await held?.client.end().catch(() => undefined);
}

/** pg_dump's arguments: the address and user in argv, the password only in PGPASSWORD. */
export function pgDumpArgs(server: PgServer, database: string, snapshotId: string): string[] {
  return [
    "--format=custom",
    `--snapshot=${snapshotId}`,
    "--no-password",
    "--lock-wait-timeout=300000",
    "--host",
    server.host,
    "--port",
    String(server.port),
    "--username",
    server.user,
    "--dbname",
    database,
  ];
}

/**
 * Stream one `pg_dump -Fc` into `restic backup --stdin` and check BOTH ends: restic 0.14 saves a snapshot of
 * whatever it got and exits 0 when the dump dies half-way: a failed dump throws even then, and the set's
 * failure forgets that snapshot.
 */
async function dumpIntoRestic(opts: {
  ctx: BackupContext;
  restic: Restic;
  pgDump: string;
  part: "db-plum" | "db-ops";
  database: string;
  held: HeldSnapshot;
  tags: string[];
  onProgress?: (p: SetProgress) => void;
}): Promise<BackupSummary> {
  const { ctx, restic, part } = opts;
  const argv = [opts.pgDump, ...pgDumpArgs(ctx.pg, opts.database, opts.held.snapshotId)];
  // A dump stuck without writing would never notice that restic is gone: stopped 30 s after restic fails.
  const resticGone = new AbortController();
  const dump = startChild(argv, {
    env: { ...process.env, ...pgEnvironment(ctx.pg) },
    stdout: "pipe",
    timeoutMs: DEFAULT_DEADLINES_MS.backup,
    abort: resticGone.signal,
    missingHint: "install postgresql-client-15 (it ships pg_dump)",
  });
  const backup = restic.backupStdin(ctx.repos.primary, dump.stdout!, {
    filename: DUMP_FILENAMES[part],
    tags: opts.tags,
    shortIdIsEnough: true,
    onProgress: (progress) => opts.onProgress?.({ part, progress }),
  });
  backup.catch(() => setTimeout(() => resticGone.abort(), 30_000).unref());
  const [stored, exit] = await Promise.all([
    backup.then(
      (s) => ({ summary: s }),
      (error: unknown) => ({ error }),
    ),
    dump.exit.then(
      (e) => e,
      (spawnError: ChildProcessError) => spawnError,
    ),
  ]);
  const dumped = !(exit instanceof ChildProcessError) && exit.exitCode === 0 && !exit.timedOut;
  if (dumped && "summary" in stored) return stored.summary;

  // A snapshot restic saved of a failed dump is forgotten with the rest of the set (failSet).
  const resticError = "error" in stored ? stored.error : undefined;
  if (dumped || (resticError && !(resticError instanceof EmptySnapshotError))) throw resticError; // restic failed first; the dump only lost its reader
  const failure =
    exit instanceof ChildProcessError ? exit : childFailure(exit, `pg_dump of database "${opts.database}"`, { timeoutMs: DEFAULT_DEADLINES_MS.backup });
  throw new DumpFailedError(failure.message, {
    command: failure.command,
    exitCode: failure.exitCode,
    signal: failure.signal,
    timedOut: failure.timedOut,
    outputTail: failure.outputTail,
    hint: "the set is not kept; check that PostgreSQL is reachable and that pg_dump (postgresql-client-15) matches the server",
  });
}

async function filesWithHashes(dir: string): Promise<SetManifest["files"]> {
  const entries = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  const files: SetManifest["files"] = [];
  for (const e of entries) {
    const full = path.join(e.parentPath, e.name);
    files.push({ path: path.relative(dir, full).split(path.sep).join("/"), size: (await stat(full)).size, sha256: await sha256OfFile(full) });
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** plum.yaml as backed up: a password written into database.url is masked (secrets never go in a set). */
export function configForBackup(yamlText: string): string {
  const doc = parseDocument(yamlText);
  const url = doc.getIn(["database", "url"]);
  if (typeof url !== "string" || maskedDatabaseUrl(url) === url) return yamlText; // as written, comments and all
  doc.setIn(["database", "url"], maskedDatabaseUrl(url));
  return doc.toString();
}

/**
 * The staging folder backed up next to the files directory. Its path stays the same from set to set, so
 * restic finds the previous files snapshot as parent and reads only what changed.
 */
async function stage(ctx: BackupContext, staging: string, manifest: SetManifest): Promise<void> {
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o700 });
  const config = existsSync(ctx.configFile) ? configForBackup(await readFile(ctx.configFile, "utf8")) : "# there was no plum.yaml when this set was made\n";
  await writeFile(path.join(staging, "plum.yaml"), config, { mode: 0o600 });
  // plum.yaml alone loses what the environment set (PLUM_DATABASE_URL, PLUM_BACKUP_SECONDARY, …): the configuration in effect goes beside it.
  const heading = [`Backup set ${manifest.setId}, made ${manifest.createdAt}; its primary repository: ${displayLocation(ctx.repos.primary.location)}.`];
  await writeFile(path.join(staging, EFFECTIVE_CONFIG_FILENAME), effectiveConfigYaml(ctx.config, heading), { mode: 0o600 });
  await writeFile(path.join(staging, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n", { mode: 0o600 });
}

/**
 * Make one backup set in the primary repository: both databases dumped from snapshots held at the same
 * moment, then the files directory with a staging folder (plum.yaml, manifest.json) in one snapshot. The
 * catalogue row exists (`running`) before anything runs; it ends `succeeded` with snapshot ids, sizes and
 * the manifest, or `failed` with the reason and no snapshot of the set left in the repository.
 * `pgDump` replaces the pg_dump binary (tests point it at one that fails half-way).
 */
export async function backupSetCreator(props: {
  ctx: BackupContext;
  kind: SetKind;
  startedBy: string;
  onProgress?: (p: SetProgress) => void;
  restic?: Restic;
  pgDump?: string;
}): Promise<BackupSet> {
  const { ctx, kind, startedBy } = props;
  const restic = props.restic ?? new Restic({ log: ctx.log });
  const primary = ctx.repos.primary;
  const startedAt = new Date();
  // Tagged with what production runs (it may be newer than this agent); the schema is then read from the dump's snapshot.
  const production = await ctx.production();
  const row = await ctx.sets.create({
    id: newSetId(startedAt),
    kind,
    status: "running",
    startedAt,
    appVersion: production.version,
    schemaVersion: production.schemaVersion,
    startedBy,
  });
  const staging = path.join(ctx.workDir, SET_STAGING_FOLDER);

  return oneAtATime(`set-staging:${staging}`, async () => {
    const held: Partial<Record<"db-plum" | "db-ops", HeldSnapshot>> = {};
    try {
      // A killed restic leaves a lock: clear stale ones first (which also tells whether the repository exists).
      try {
        await restic.unlock(primary);
      } catch (err) {
        if (!(err instanceof RepositoryMissingError)) throw err;
        await initialiseOnFirstUse(ctx, restic);
      }

      held["db-plum"] = await holdSnapshot(ctx.pg, ctx.databases.product);
      // plum_ops is dumped with this very row in it: the snapshot sees it `captured`, so a restored plum_ops
      // never shows the set it came from as still running; here it is `running` again until it ends.
      await row.update({ status: "captured" });
      held["db-ops"] = await holdSnapshot(ctx.pg, ctx.databases.ops);
      await row.update({ status: "running", schemaVersion: await appliedSchemaVersion(held["db-plum"].client) });
      // Counting rows and hashing files run beside the dumps (they read the same snapshots and files);
      // each is awaited below, and a failure must not surface as an unhandled rejection before that.
      for (const h of [held["db-plum"], held["db-ops"]]) {
        h.counting = exactRowCounts(h.client);
        h.counting.catch(() => undefined);
      }
      // In the same held transaction (its queries queue on the one client): the fingerprints describe the very
      // rows pg_dump writes from that exported snapshot, whatever production writes meanwhile.
      held["db-plum"].fingerprinting = fingerprintInTransaction(held["db-plum"].client);
      held["db-plum"].fingerprinting.catch(() => undefined);
      const hashing = filesWithHashes(ctx.filesDir);
      hashing.catch(() => undefined);

      const summaries: Partial<Record<SetPart, BackupSummary>> = {};
      const tables: Partial<Record<"db-plum" | "db-ops", Record<string, number>>> = {};
      let fingerprint: DatabaseFingerprint | undefined;
      for (const part of ["db-plum", "db-ops"] as const) {
        const database = part === "db-plum" ? ctx.databases.product : ctx.databases.ops;
        summaries[part] = await dumpIntoRestic({
          ctx,
          restic,
          pgDump: props.pgDump ?? "pg_dump",
          part,
          database,
          held: held[part]!,
          tags: setTags(row, part),
          onProgress: props.onProgress,
        });
        tables[part] = await held[part]!.counting;
        if (part === "db-plum") fingerprint = await held[part]!.fingerprinting;
        await releaseSnapshot(held[part]);
        delete held[part];
      }
      const manifest: SetManifest = {
        setId: row.id,
        kind,
        createdAt: startedAt.toISOString(),
        appVersion: row.appVersion,
        schemaVersion: row.schemaVersion,
        databases: {
          "db-plum": { database: ctx.databases.product, tables: tables["db-plum"]!, fingerprint },
          "db-ops": { database: ctx.databases.ops, tables: tables["db-ops"]! },
        },
        files: await hashing,
      };

      await stage(ctx, staging, manifest);
      summaries.files = await restic.backupPaths(primary, [ctx.filesDir, staging], {
        tags: setTags(row, "files"),
        shortIdIsEnough: true,
        onProgress: (progress) => props.onProgress?.({ part: "files", progress }),
      });
      // restic 0.14 names new snapshots by short ids: one listing of the set gives every part's full id.
      const full = new Map((await restic.snapshots(primary, { tags: [`set:${row.id}`] })).map((s) => [s.id.slice(0, 8), s.id]));
      for (const s of Object.values(summaries)) s.snapshotId = full.get(s.snapshotId.slice(0, 8)) ?? s.snapshotId;

      const all = Object.values(summaries);
      await row.update({
        status: "succeeded",
        finishedAt: new Date(),
        primarySnapshots: Object.fromEntries(Object.entries(summaries).map(([part, s]) => [part, s.snapshotId])),
        bytesAdded: String(all.reduce((n, s) => n + s.bytesAdded, 0)),
        bytesProcessed: String(all.reduce((n, s) => n + s.bytesProcessed, 0)),
        manifest,
      });
      await ctx.evidence.record({
        kind: "backup",
        outcome: "success",
        setId: row.id,
        repository: "primary",
        detail: {
          kind,
          startedBy,
          snapshots: row.primarySnapshots,
          bytesAdded: Number(row.bytesAdded),
          bytesProcessed: Number(row.bytesProcessed),
          seconds: (row.finishedAt!.getTime() - startedAt.getTime()) / 1000,
          tables: Object.keys(manifest.databases["db-plum"].tables).length,
          files: manifest.files.length,
        },
      });
      return row;
    } catch (err) {
      await failSet({ ctx, restic, row, err });
      throw err;
    } finally {
      await releaseSnapshot(held["db-plum"]);
      await releaseSnapshot(held["db-ops"]);
      await rm(staging, { recursive: true, force: true });
    }
  });
}

/**
 * Make the primary repository, but only when no set was ever made: a repository that vanished after sets
 * were stored in it is an unmounted disk or a wrong path, and a fresh one there would hide that.
 */
async function initialiseOnFirstUse(ctx: BackupContext, restic: Restic): Promise<void> {
  const stored = await ctx.sets.count({ where: { status: ["succeeded", "forgotten"] } });
  if (stored > 0) {
    throw new PlumError(`the primary repository ${displayLocation(ctx.repos.primary.location)} does not exist, yet ${stored} backup sets were stored in it`, {
      hint: "check that its storage is mounted and that backup.primary points at it; to start a new repository on purpose, move the old catalogue aside with the vendor",
    });
  }
  await restic.init(ctx.repos.primary);
}

/** A failed set leaves no snapshot behind (best effort: the repository itself may be what failed). */
async function failSet(opts: { ctx: BackupContext; restic: Restic; row: BackupSet; err: unknown }): Promise<void> {
  const { ctx, restic, row, err } = opts;
  const tail = err instanceof ChildProcessError ? err.outputTail.trim().split("\n").slice(-10).join("\n") : "";
  const error = [(err as Error).message, tail].filter(Boolean).join("\n");
  let forgotten: string[] = [];
  try {
    forgotten = await restic.forget(
      ctx.repos.primary,
      (await restic.snapshots(ctx.repos.primary, { tags: [`set:${row.id}`] })).map((s) => s.id),
    );
  } catch (cleanup) {
    ctx.log.warn({ setId: row.id, err: (cleanup as Error).message }, "could not forget the snapshots of a failed set; retention will");
  }
  await row.update({ status: "failed", finishedAt: new Date(), error });
  await ctx.evidence.record({
    kind: "backup",
    outcome: "failure",
    setId: row.id,
    repository: "primary",
    detail: { kind: row.kind, startedBy: row.startedBy, error, snapshotsForgotten: forgotten, resticError: err instanceof ResticError },
  });
}
