import { Writable } from "node:stream";
import path from "node:path";
import type { BackupSet } from "../backup-catalogue.ts";
import type { BackupContext } from "../backup-context.ts";
import { SET_PARTS, type SetManifest, type SetPart } from "../backup-types.ts";
import { RepositoryMissingError } from "../restic/restic-errors.ts";
import type { Snapshot } from "../restic/restic-output.ts";
import type { Restic } from "../restic/restic.ts";

const MANIFEST_LIMIT = 64 * 1024 * 1024;

/** One file of a snapshot, read into memory (a manifest: small). */
async function dumpText(restic: Restic, ctx: BackupContext, snapshot: Snapshot, file: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > MANIFEST_LIMIT) return done(new Error(`${file} is larger than a manifest can be`));
      chunks.push(chunk);
      done();
    },
  });
  await restic.dump(ctx.repos.primary, snapshot.id, file, sink);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The manifest of a set, read back from its files snapshot: the staging folder backed up beside the files
 * directory holds it (backup-set-creator.ts). The snapshot's paths are those of the host that made it.
 */
async function manifestFromRepository(restic: Restic, ctx: BackupContext, setId: string, files: Snapshot): Promise<SetManifest | undefined> {
  const candidates = [...files.paths].sort((a, b) => Number(path.basename(b) === "set-staging") - Number(path.basename(a) === "set-staging"));
  for (const dir of candidates) {
    try {
      const manifest = JSON.parse(await dumpText(restic, ctx, files, path.posix.join(dir, "manifest.json"))) as SetManifest;
      if (manifest.setId === setId && manifest.databases?.["db-plum"] && Array.isArray(manifest.files)) return manifest;
    } catch {
      // not this path
    }
  }
  return undefined;
}

/**
 * Backup sets left `running` (or `captured`) by a process that is gone (the caller holds the backup work lock exclusively, so
 * no live process is making one). A set whose every part is in the primary repository together with its
 * manifest was complete when its maker died: the files part is stored last, after both dumps were checked,
 * and the manifest it carries is the one the catalogue would have held (the usual case: a plum_ops restored
 * from its own set, dumped while that set was still running). It is marked succeeded from what the
 * repository holds. Any other is marked failed and its partial snapshots are forgotten (restic forget by its
 * set tag), as a set that fails in its own process is. Evidence `backup` either way. Returns what was done.
 */
export async function runningSetsReconciler(ctx: BackupContext, restic: Restic, by: string): Promise<string[]> {
  // `captured` is what a set's own plum_ops dump says of it (backup-set-creator): a plum_ops restored from a set,
  // or a crash in the instant the row said so, is judged by the repository the same way.
  const running = await ctx.sets.findAll({ where: { status: ["running", "captured"] }, order: [["startedAt", "ASC"]] });
  const done: string[] = [];
  if (running.length === 0) return done;
  let repositoryError: string | undefined;
  try {
    await restic.unlock(ctx.repos.primary); // the dead maker's restic left its lock
  } catch (err) {
    repositoryError = err instanceof RepositoryMissingError ? "the primary repository does not exist" : (err as Error).message;
  }
  for (const set of running) {
    let snapshots: Snapshot[] = [];
    let listError = repositoryError;
    if (!listError) {
      try {
        snapshots = await restic.snapshots(ctx.repos.primary, { tags: [`set:${set.id}`] });
      } catch (err) {
        listError = (err as Error).message;
      }
    }
    const byPart = new Map<SetPart, Snapshot>();
    for (const s of snapshots) for (const t of s.tags) if (t.startsWith("part:")) byPart.set(t.slice(5) as SetPart, s);
    const complete = !listError && SET_PARTS.every((part) => byPart.has(part));
    const manifest = complete ? await manifestFromRepository(restic, ctx, set.id, byPart.get("files")!) : undefined;
    if (manifest) done.push(await markSucceeded(ctx, set, byPart, manifest, by));
    else done.push(await markFailed(ctx, restic, set, snapshots, by, listError ?? (complete ? "its manifest could not be read back" : undefined)));
  }
  return done;
}

async function markSucceeded(ctx: BackupContext, set: BackupSet, byPart: Map<SetPart, Snapshot>, manifest: SetManifest, by: string): Promise<string> {
  const files = byPart.get("files")!;
  await set.update({
    status: "succeeded",
    finishedAt: files.time,
    primarySnapshots: Object.fromEntries(SET_PARTS.map((part) => [part, byPart.get(part)!.id])),
    manifest,
    error: null,
  });
  await ctx.evidence.record({
    kind: "backup",
    outcome: "success",
    setId: set.id,
    repository: "primary",
    detail: {
      kind: set.kind,
      startedBy: set.startedBy,
      snapshots: set.primarySnapshots,
      reconciled: `${by}: the set was found unfinished with every part and its manifest in the primary repository`,
      tables: Object.keys(manifest.databases["db-plum"].tables).length,
      files: manifest.files.length,
    },
  });
  return `backup set ${set.id} was left unfinished with every part in the repository: marked succeeded`;
}

async function markFailed(ctx: BackupContext, restic: Restic, set: BackupSet, snapshots: Snapshot[], by: string, problem?: string): Promise<string> {
  let forgotten: string[] = [];
  let forgetError: string | undefined;
  try {
    forgotten = await restic.forget(
      ctx.repos.primary,
      snapshots.map((s) => s.id),
    );
  } catch (err) {
    forgetError = (err as Error).message;
  }
  const error = [
    `interrupted: the process making this set stopped before it finished (found unfinished by ${by})`,
    problem ? `; ${problem}` : "",
    forgotten.length > 0 ? `; its ${forgotten.length} partial snapshot(s) were forgotten` : "",
    forgetError ? `; its partial snapshots could not be forgotten (${forgetError}): retention forgets them` : "",
  ].join("");
  await set.update({ status: "failed", finishedAt: new Date(), error });
  await ctx.evidence.record({
    kind: "backup",
    outcome: "failure",
    setId: set.id,
    repository: "primary",
    detail: { kind: set.kind, startedBy: set.startedBy, error, snapshotsForgotten: forgotten, reconciled: by },
  });
  return `backup set ${set.id} was left unfinished: marked failed${forgotten.length > 0 ? `, ${forgotten.length} partial snapshot(s) forgotten` : ""}`;
}
