import type { DatabaseFingerprint } from "../lib/db/table-fingerprints.ts";

/**
 * The shape of a backup set, shared by everything under backup/.
 *
 * A set is one run with one id. In each restic repository it is three snapshots, all tagged
 * `plum-set`, `set:<id>`, `kind:<kind>`, `app:<version>`, `schema:<schema version>` and `part:<part>`:
 *   - part `db-plum`: `pg_dump -Fc` of the product database, streamed with `--stdin --stdin-filename plum.dump`
 *   - part `db-ops`:  `pg_dump -Fc` of the appliance's database, `--stdin-filename plum_ops.dump`
 *   - part `files`:   the files directory and a staging folder holding `plum.yaml` as written, the
 *                     configuration in effect (`plum.effective.yaml`; neither holds a secret) and `manifest.json`,
 *                     backed up together in one snapshot at their absolute paths (PLUM_HOME/files and
 *                     PLUM_HOME/run/backup/set-staging)
 * So a set restores with plain restic + pg_restore (README, "Restore without the appliance").
 */
export const SET_PARTS = ["db-plum", "db-ops", "files"] as const;
export type SetPart = (typeof SET_PARTS)[number];

export const SET_KINDS = ["scheduled", "manual", "pre-upgrade", "pre-restore"] as const;
export type SetKind = (typeof SET_KINDS)[number];

/**
 * A set's catalogue status. `captured` is what the set's own row says inside the set's dump of plum_ops (see
 * backupSetCreator): a restored plum_ops shows the set it came from so, never as `running`.
 */
export type SetStatus = "running" | "captured" | "succeeded" | "failed" | "forgotten";

/** The folder in the backup work dir (PLUM_HOME/run/backup) whose plum.yaml, plum.effective.yaml and manifest.json go in a files snapshot. */
export const SET_STAGING_FOLDER = "set-staging";

/** The configuration in effect when a set was made (plum.yaml, the environment, the defaults; secrets masked), beside plum.yaml. */
export const EFFECTIVE_CONFIG_FILENAME = "plum.effective.yaml";

/** The file name each database dump has inside its snapshot. */
export const DUMP_FILENAMES: Record<"db-plum" | "db-ops", string> = { "db-plum": "plum.dump", "db-ops": "plum_ops.dump" };

/** What a set's manifest records, to verify a restore against. */
export interface SetManifest {
  setId: string;
  kind: SetKind;
  createdAt: string; // ISO
  appVersion: string;
  schemaVersion: string;
  databases: Record<
    "db-plum" | "db-ops",
    {
      database: string;
      tables: Record<string, number>; // exact row counts at the dump's snapshot
      /**
       * db-plum only: content fingerprints of the product tables (lib/db/table-fingerprints.ts), computed in the
       * very transaction whose exported snapshot pg_dump dumps, so they describe exactly the dumped rows. Absent
       * from sets made before fingerprints: those restore with row counts and file hashes checked only.
       */
      fingerprint?: DatabaseFingerprint;
    }
  >;
  files: Array<{ path: string; size: number; sha256: string }>; // relative to the files directory
}

export type RepositoryRole = "primary" | "secondary";

/** A restic repository the appliance uses: where, and how to read its password (a 0600 file, never argv). */
export interface Repository {
  role: RepositoryRole;
  /** A path or any restic repository URL, as configured. It may carry credentials: shown only through displayLocation, passed only in restic's environment. */
  location: string;
  passwordFile: string;
  /** Set when the repository is served append-only: restic reaches it there, and `forget`/`prune` on it are refused. */
  appendOnly?: AppendOnlyEndpoint;
}

/** An append-only path to a repository (backup/restic/append-only-server.ts). */
export interface AppendOnlyEndpoint {
  /** How it is served, without credentials, e.g. "rclone serve restic --append-only on 127.0.0.1:41987". */
  readonly served: string;
  /** The `rest:` URL restic uses, credentials included (restic's environment only); starts the server when it is not running. */
  url(): Promise<string>;
}

/** Tags of a set part (restic `--tag` values). */
export function setTags(set: { id: string; kind: SetKind; appVersion: string; schemaVersion: string }, part: SetPart): string[] {
  return ["plum-set", `set:${set.id}`, `kind:${set.kind}`, `app:${set.appVersion}`, `schema:${set.schemaVersion}`, `part:${part}`];
}
