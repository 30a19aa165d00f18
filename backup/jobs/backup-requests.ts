import { z } from "zod";
import type { BackupJobs, JobView } from "./backup-jobs.ts";
import type { BackupOperations } from "./backup-operations.ts";

/** A request for a backup job, as the console's forms and the control API (plumctl) send it. */
export const jobRequestSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("backup"), setKind: z.enum(["manual", "scheduled", "pre-upgrade"]).default("manual") }),
  z.object({ kind: z.literal("copy") }),
  z.object({ kind: z.literal("check"), role: z.enum(["primary", "secondary"]).default("primary") }),
  z.object({ kind: z.literal("forget") }),
  z.object({
    kind: z.literal("restore"),
    setId: z.string().regex(/^[0-9A-Za-z-]{6,64}$/),
    db: z.boolean(),
    files: z.boolean(),
    from: z.enum(["primary", "secondary"]).default("primary"),
  }),
  z.object({
    kind: z.literal("drill"),
    setId: z
      .string()
      .regex(/^[0-9A-Za-z-]{6,64}$/)
      .optional(),
  }),
]);
export type JobRequest = z.infer<typeof jobRequestSchema>;

/**
 * A set's product database restored into a database of the agent's choosing (the upgrade's staging copy),
 * verified against the set's manifest. Only the agent asks for it: the control API never names a database.
 */
export interface CopyRestoreRequest {
  kind: "restore-copy";
  setId: string;
  database: string;
  /** Why the copy is made, in the evidence ("staging"). */
  purpose: string;
}

/** Every job the agent's queue runs: what the console and plumctl may ask for, and what only the agent does. */
export type AgentJobRequest = JobRequest | CopyRestoreRequest;

const LABELS: Record<JobRequest["kind"], string> = {
  backup: "backup set",
  copy: "copy to the secondary",
  check: "integrity check",
  forget: "retention (forget + prune)",
  restore: "restore",
  drill: "restore drill",
};

/** Queue the job a request asks for. */
export function startJob(jobs: BackupJobs, ops: BackupOperations, request: AgentJobRequest, startedBy: string): JobView {
  switch (request.kind) {
    case "backup":
      return jobs.enqueue("backup", `${request.setKind} ${LABELS.backup}`, startedBy, (p) => ops.backup(request.setKind, startedBy, p));
    case "copy":
      return jobs.enqueue("copy", LABELS.copy, startedBy, (p) => ops.copy(startedBy, p));
    case "check":
      return jobs.enqueue("check", `${LABELS.check} of the ${request.role}`, startedBy, (p) => ops.check(request.role, startedBy, p));
    case "forget":
      return jobs.enqueue("forget", LABELS.forget, startedBy, (p) => ops.forget(startedBy, p));
    case "restore":
      return jobs.enqueue(
        "restore",
        `${LABELS.restore} of set ${request.setId} (${[request.db && "database", request.files && "files"].filter(Boolean).join(" + ")}) from the ${request.from}`,
        startedBy,
        (p) => ops.restore(request, startedBy, p),
      );
    case "restore-copy":
      return jobs.enqueue("restore", `${LABELS.restore} of set ${request.setId} (database) for ${request.purpose}`, startedBy, (p) =>
        ops.restoreCopy(request, startedBy, p),
      );
    case "drill":
      return jobs.enqueue("drill", `${LABELS.drill}${request.setId ? ` of set ${request.setId}` : " of the latest set"}`, startedBy, (p) =>
        ops.drill(request.setId, startedBy, p),
      );
  }
}
