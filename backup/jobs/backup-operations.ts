import type { BackupSet } from "../backup-catalogue.ts";
import type { Progress } from "./backup-jobs.ts";
import type { RepositoryRole, SetKind } from "../backup-types.ts";
import type { CheckResult } from "../../product/validation/suite.ts";
import type { DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";

export interface RestoreRequest {
  setId: string;
  db: boolean;
  files: boolean;
  from: RepositoryRole;
}

/**
 * What the backup agent can be asked to do, by the scheduler, the console or `plumctl`. Implemented over a
 * BackupContext by `backupOperationsFor` (backup/backup-operations-impl.ts).
 */
export interface BackupOperations {
  /** A backup set, then (with a secondary) its copy to the second site. */
  backup(kind: SetKind, startedBy: string, progress: Progress): Promise<BackupSet>;
  copy(startedBy: string, progress: Progress): Promise<unknown>;
  check(role: RepositoryRole, startedBy: string, progress: Progress): Promise<unknown>;
  /** Apply the retention policy (forget + prune) in both repositories. */
  forget(startedBy: string, progress: Progress): Promise<unknown>;
  restore(request: RestoreRequest, startedBy: string, progress: Progress): Promise<unknown>;
  /** A set's product database into a new database, verified against its manifest; evidence "restore" either way. */
  restoreCopy(
    request: { setId: string; database: string; purpose: string },
    startedBy: string,
    progress: Progress,
  ): Promise<{ checks: CheckResult[]; fingerprint?: { fingerprint: DatabaseFingerprint; seconds: number } }>;
  drill(setId: string | undefined, startedBy: string, progress: Progress): Promise<unknown>;
}
