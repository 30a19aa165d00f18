import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { PlumError } from "../../lib/errors.ts";
import { fingerprintDatabase, type DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";
import type { CheckResult } from "../../product/validation/suite.ts";
import type { BackupSet } from "../backup-catalogue.ts";
import type { BackupContext } from "../backup-context.ts";
import { DUMP_FILENAMES, SET_PARTS, type Repository, type SetManifest, type SetPart } from "../backup-types.ts";
import type { Snapshot } from "../restic/restic-output.ts";
import type { Restic } from "../restic/restic.ts";
import { comparableFingerprint, contentChecks, fileChecks, noFingerprintCheck, tableCountChecks } from "./manifest-verifier.ts";
import { pgRestoreProcess } from "./pg-restore.ts";
import { createEmptyDatabase, rowCountsOf } from "./whole-databases.ts";

export interface ScratchTarget {
  /** A database that must not exist yet: the product dump is restored into it. */
  database?: string;
  /** An empty folder: the files snapshot is restored below it, at the files directory's original absolute path. */
  filesTarget?: string;
}

export interface ScratchRestore {
  manifest: SetManifest;
  /** Where the files directory landed (below `filesTarget`). */
  filesDir?: string;
  /** Row counts and content per table and the files' sha256, each against the manifest. */
  checks: CheckResult[];
  /** The restored database's fingerprints, when the manifest had some to compare with; with the time they took. */
  fingerprint?: { fingerprint: DatabaseFingerprint; seconds: number };
}

/** The set's snapshot of each part in one repository, found by tags: a copy in the secondary has an id of its own. */
export async function setSnapshotsIn(restic: Restic, repo: Repository, setId: string): Promise<Record<SetPart, Snapshot>> {
  const snapshots = await restic.snapshots(repo, { tags: [`set:${setId}`] });
  const byPart = Object.fromEntries(snapshots.flatMap((s) => s.tags.filter((t) => t.startsWith("part:")).map((t) => [t.slice(5), s])));
  const missing = SET_PARTS.filter((part) => !byPart[part]);
  if (missing.length > 0) {
    throw new PlumError(`set ${setId} is incomplete in the ${repo.role} repository: no snapshot of ${missing.join(", ")}`, {
      hint:
        repo.role === "secondary"
          ? "the set may not have been copied to the second site yet: restore it from the primary, or copy it first"
          : "the set may have been forgotten by retention: choose another set",
    });
  }
  return byPart as Record<SetPart, Snapshot>;
}

/** `restic dump … /plum.dump | pg_restore --no-owner --dbname <database>`, into a new database. */
async function restoreProductDump(ctx: BackupContext, restic: Restic, repo: Repository, snapshot: Snapshot, database: string): Promise<void> {
  await createEmptyDatabase(ctx.pg, database);
  const pgRestore = pgRestoreProcess(ctx.pg, database);
  const [dumped, restored] = await Promise.allSettled([restic.dump(repo, snapshot.id, `/${DUMP_FILENAMES["db-plum"]}`, pgRestore.input), pgRestore.finished]);
  // restic's error says why pg_restore saw a short input, so it comes first.
  if (dumped.status === "rejected") throw dumped.reason;
  if (restored.status === "rejected") throw restored.reason;
}

/** Whether `dir` is a set's staging folder: its manifest.json names the set. */
function isStagingOf(dir: string, setId: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8")) as SetManifest).setId === setId;
  } catch {
    return false;
  }
}

/**
 * Restore the files snapshot below `target`. The snapshot holds two absolute paths, the files directory and
 * the staging folder with the set's manifest.json; the files directory is the one that is not staging.
 */
async function restoreFilesSnapshot(restic: Restic, repo: Repository, setId: string, snapshot: Snapshot, target: string): Promise<string> {
  await mkdir(target, { recursive: true });
  await restic.restore(repo, snapshot.id, target);
  const filesDirs = snapshot.paths.map((p) => path.join(target, p)).filter((dir) => !isStagingOf(dir, setId));
  if (filesDirs.length !== 1)
    throw new PlumError(
      `snapshot ${snapshot.shortId} of the files of set ${setId} holds ${snapshot.paths.join(", ")}: cannot tell which is the files directory`,
    );
  await mkdir(filesDirs[0], { recursive: true }); // an empty files directory may not come back from restic
  return filesDirs[0];
}

/**
 * Restore a set's product database and/or files out of the way (a new database, a folder) and verify them
 * against the set's manifest: row counts, the tables' content (fingerprints, when the manifest has them) and
 * the files' sha256. Verification failures are returned as failing checks; anything that stops the
 * restore itself throws. Either way the caller owns `target` and cleans it up.
 */
export async function scratchRestorer(props: {
  ctx: BackupContext;
  restic: Restic;
  set: BackupSet;
  repo: Repository;
  target: ScratchTarget;
  onProgress?: (line: string) => void;
  /** Between restoring and verifying (a drill hands the scratch copy to its hook here). */
  beforeVerify?: (restored: { filesDir?: string }) => Promise<void>;
}): Promise<ScratchRestore> {
  const { ctx, restic, set, repo, target } = props;
  const say = props.onProgress ?? (() => undefined);
  const manifest = set.manifest;
  if (!manifest)
    throw new PlumError(`set ${set.id} has no manifest: it cannot be verified, so it is not restored`, { hint: "choose a set whose status is succeeded" });
  const snapshots = await setSnapshotsIn(restic, repo, set.id);
  let filesDir: string | undefined;
  if (target.database) {
    say(`restoring the product database of set ${set.id} from the ${repo.role} repository into ${target.database}`);
    await restoreProductDump(ctx, restic, repo, snapshots["db-plum"], target.database);
  }
  if (target.filesTarget) {
    say(`restoring the files of set ${set.id} from the ${repo.role} repository`);
    filesDir = await restoreFilesSnapshot(restic, repo, set.id, snapshots.files, target.filesTarget);
  }
  await props.beforeVerify?.({ filesDir });
  const checks: CheckResult[] = [];
  let fingerprint: ScratchRestore["fingerprint"];
  if (target.database) {
    checks.push(...tableCountChecks(manifest.databases["db-plum"].tables, await rowCountsOf(ctx.pg, target.database)));
    const expected = comparableFingerprint(manifest);
    if (expected) {
      say("comparing the restored tables' content with the manifest's fingerprints");
      fingerprint = await fingerprintDatabase(ctx.pg, target.database);
      checks.push(...contentChecks(expected, fingerprint.fingerprint));
    } else checks.push(noFingerprintCheck(manifest));
  }
  if (filesDir) checks.push(...(await fileChecks(filesDir, manifest.files)));
  const failed = checks.filter((c) => !c.passed).length;
  say(
    failed === 0
      ? `verified against the manifest: ${checks.length} checks passed`
      : `verification against the manifest failed: ${failed} of ${checks.length} checks`,
  );
  return { manifest, filesDir, checks, fingerprint };
}
