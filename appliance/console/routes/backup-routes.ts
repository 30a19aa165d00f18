import type { Router } from "express";
import { z } from "zod";
import type { BackupContext } from "../../../backup/backup-context.ts";
import type { BackupJobs } from "../../../backup/jobs/backup-jobs.ts";
import type { BackupOperations } from "../../../backup/jobs/backup-operations.ts";
import { jobRequestSchema, type JobRequest } from "../../../backup/jobs/backup-requests.ts";
import type { BackupScheduler } from "../../../backup/jobs/backup-scheduler.ts";
import { signedIn } from "../../../lib/http/auth/session-auth.ts";
import { BadRequestError, HttpError } from "../../../lib/http/http-errors.ts";
import { startAuditedJob } from "../../audit/backup-job-audit.ts";
import type { ConsoleContext } from "../console-context.ts";
import { authorize, can, type Subject } from "../policies.ts";
import { presentDrill, presentRepository, presentSet } from "../presenters/backup-presenter.ts";

export interface ConsoleBackup {
  ctx: BackupContext;
  jobs: BackupJobs;
  operations: BackupOperations;
  scheduler?: BackupScheduler;
}

const SUBJECT: Record<JobRequest["kind"], Subject> = {
  backup: "Backup",
  copy: "Backup",
  check: "Backup",
  forget: "Backup",
  restore: "Restore",
  drill: "Drill",
};

const jobForm = z.object({
  kind: z.enum(["backup", "copy", "check", "forget", "restore", "drill"]),
  role: z.enum(["primary", "secondary"]).optional(),
  setId: z.string().max(64).optional(),
  db: z.literal("on").optional(),
  files: z.literal("on").optional(),
  from: z.enum(["primary", "secondary"]).optional(),
  confirm: z.string().max(64).optional(),
});

/** Backups, the restore wizard and drills. Auditors list and read; operators run; restoring is for admins. */
export function backupRoutes(router: Router, ctx: ConsoleContext, backup: ConsoleBackup) {
  const { sets } = backup.ctx;

  router.get("/backups", async (_req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "read", "Backup");
    const rows = await sets.findAll({ order: [["startedAt", "DESC"]], limit: 100 });
    const [lastCheck] = await backup.ctx.evidence.list({ kind: "check", limit: 1 });
    res.render("console/backups", {
      title: "Backups",
      sets: rows.map(presentSet),
      jobs: backup.jobs.list().slice(0, 10),
      canRun: can(actor, "operate", "Backup"),
      canRestore: can(actor, "operate", "Restore"),
      secondary: backup.ctx.repos.secondary && presentRepository(backup.ctx.repos.secondary),
      primary: presentRepository(backup.ctx.repos.primary),
      lastCheck: lastCheck && { at: lastCheck.at, passed: lastCheck.outcome === "success", subset: (lastCheck.detail as { subset?: string }).subset },
      next: backup.scheduler ? [...backup.scheduler.next].map(([name, at]) => ({ name, at })) : [],
      policy: backup.ctx.config.backup,
    });
  });

  router.get("/backups/sets/:id", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Backup");
    const set = await sets.findByPk(String(req.params.id));
    if (!set) throw new HttpError(404, `There is no backup set ${req.params.id}.`);
    res.render("console/backup-set", { title: `Backup set ${set.id}`, set: presentSet(set), manifest: set.manifest });
  });

  router.post("/backups/jobs", async (req, res) => {
    const { actor } = signedIn(res)!;
    // Who may run no job at all is refused before their form is even read.
    if (!(["Backup", "Drill", "Restore"] as const).some((subject) => can(actor, "operate", subject))) authorize(actor, "operate", "Backup");
    const form = jobForm.parse(req.body ?? {});
    authorize(actor, "operate", SUBJECT[form.kind]);
    if (form.kind === "restore") {
      const set = await sets.findByPk(form.setId ?? "");
      if (!set || set.status !== "succeeded") throw new BadRequestError(`There is no restorable set ${form.setId ?? ""}.`);
      if (form.confirm !== set.id) throw new BadRequestError("The restore was not started: type the set id exactly to confirm.", { confirm: `type ${set.id}` });
      if (!form.db && !form.files) throw new BadRequestError("The restore was not started: choose the database, the files, or both.");
    }
    const request = jobRequestSchema.parse({
      kind: form.kind,
      role: form.role,
      setId: form.setId || undefined,
      db: form.db === "on",
      files: form.files === "on",
      from: form.from,
    });
    const { job } = await startAuditedJob({ jobs: backup.jobs, operations: backup.operations, audit: ctx.audit }, request, `user:${actor.username}`);
    res.redirect(303, `/backups/jobs/${job.id}`);
  });

  router.get("/backups/jobs/:id", (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Backup");
    const job = backup.jobs.get(String(req.params.id));
    if (!job) throw new HttpError(404, "There is no such job (jobs are kept until the agent restarts).");
    res.render("console/backup-job", { title: job.label, job, finished: job.status === "succeeded" || job.status === "failed" });
  });

  router.get("/backups/jobs/:id/status", (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Backup");
    const job = backup.jobs.get(String(req.params.id));
    if (!job) throw new HttpError(404, "There is no such job.");
    res.json({ status: job.status, progress: job.progress, error: job.error });
  });

  router.get("/restore", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "read", "Restore");
    const set = typeof req.query.set === "string" ? await sets.findByPk(req.query.set) : null;
    const choices = await sets.findAll({ where: { status: "succeeded" }, order: [["startedAt", "DESC"]], limit: 100 });
    res.render("console/restore", {
      title: "Restore",
      set: set && presentSet(set),
      choices: choices.map(presentSet),
      canRestore: can(actor, "operate", "Restore"),
      hasSecondary: !!backup.ctx.repos.secondary,
      // What a restore of the database gives up: everything written since the set was taken.
      lostSince: set?.startedAt,
    });
  });

  router.get("/drills", async (_req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "read", "Drill");
    const drills = await backup.ctx.evidence.list({ kind: "drill", limit: 50 });
    res.render("console/drills", {
      title: "Restore drills",
      drills: drills.map(presentDrill),
      canRun: can(actor, "operate", "Drill"),
      rtoMinutes: backup.ctx.config.backup.rtoMinutes,
    });
  });
}
