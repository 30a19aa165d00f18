import type { BackupSet } from "../backup/backup-catalogue.ts";
import type { JobView } from "../backup/jobs/backup-jobs.ts";

/** One line per set for `plumctl backup list`. */
export function presentSetLine(s: BackupSet): string {
  const took = s.finishedAt ? `${((s.finishedAt.getTime() - s.startedAt.getTime()) / 1000).toFixed(1)} s` : "—";
  return `${s.id}  ${s.kind.padEnd(11)}  ${s.status.padEnd(9)}  ${s.startedAt.toISOString()}  ${took.padStart(8)}  ${s.copiedAt ? "copied" : "not copied"}${s.error ? `  ${s.error}` : ""}`;
}

/** One line per job for `plumctl backup jobs` (a JobView as JSON: its dates are strings). */
export function presentJobLine(j: JobView): string {
  const at = String(j.startedAt ?? j.queuedAt);
  return `${j.id}  ${j.status.padEnd(9)}  ${at}  ${j.startedBy}  ${j.label}${j.error ? `  ${j.error}` : ""}`;
}
