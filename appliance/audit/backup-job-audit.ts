import type { BackupJobs, JobView } from "../../backup/jobs/backup-jobs.ts";
import type { BackupOperations } from "../../backup/jobs/backup-operations.ts";
import { startJob, type AgentJobRequest } from "../../backup/jobs/backup-requests.ts";
import type { Recovery } from "../../backup/restore/restore-recovery.ts";
import type { AuditLog } from "./audit-log.ts";

export type JobPhase = "requested" | "succeeded" | "failed";

/** `backup.restore.requested`, `backup.drill.failed`, …: one action per job kind and phase. */
export function jobAction(kind: AgentJobRequest["kind"], phase: JobPhase): string {
  return `backup.${kind}.${phase}`;
}

const RESULT_KEYS = ["id", "restoreId", "preRestoreSetId", "durationSeconds", "rtoSeconds", "passed"] as const;

/** What of a job's result goes in its audit row: ids and figures, never the whole report. */
function resultSummary(result: unknown): Record<string, unknown> | undefined {
  if (!result || typeof result !== "object") return undefined;
  const picked: Record<string, unknown> = {};
  for (const key of RESULT_KEYS) {
    const value = (result as Record<string, unknown>)[key];
    if (value !== undefined) picked[key] = value;
  }
  return Object.keys(picked).length > 0 ? picked : undefined;
}

/**
 * Queue a backup job someone asked for and audit it as it happens: `…requested` now, `…succeeded` or
 * `…failed` when it has ended (never an outcome written at the moment a job is merely accepted). `audited`
 * resolves with the finished job once its outcome row is written (a process that exits after it awaits it).
 */
export async function startAuditedJob(
  deps: { jobs: BackupJobs; operations: BackupOperations; audit: AuditLog },
  request: AgentJobRequest,
  actor: string,
): Promise<{ job: JobView; audited: Promise<JobView> }> {
  const job = startJob(deps.jobs, deps.operations, request, actor);
  const finished = deps.jobs.done(job.id);
  const requested = deps.audit.append({ actor, action: jobAction(request.kind, "requested"), target: job.id, detail: { ...request } });
  const audited = Promise.all([requested.catch(() => undefined), finished]).then(async ([, done]) => {
    const ok = done.status === "succeeded";
    await deps.audit
      .append({
        actor,
        action: jobAction(request.kind, ok ? "succeeded" : "failed"),
        target: job.id,
        outcome: ok ? "success" : "failure",
        detail: { ...request, ...(ok ? { result: resultSummary(done.result) } : { error: done.error }) },
      })
      .catch(() => undefined);
    return done;
  });
  await requested;
  return { job, audited };
}

const KIND_OF_RESTORE = { production: "restore", copy: "restore-copy", drill: "drill" } as const;

/** The outcome rows of restores a crash interrupted and the agent's start finished or undid. */
export async function auditRecoveredRestores(audit: AuditLog, recovery: Recovery): Promise<void> {
  for (const r of recovery.restores) {
    const ok = r.action === "finished";
    await audit.append({
      actor: "agent",
      action: jobAction(KIND_OF_RESTORE[r.kind], ok ? "succeeded" : "failed"),
      target: `restore:${r.id}`,
      outcome: ok ? "success" : "failure",
      detail: { restoreId: r.id, setId: r.setId, requestedBy: r.requestedBy, interruptedAt: r.interruptedAt, recovery: r.action, did: r.did },
    });
  }
}
