import { readFileSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import type { JobView } from "../backup/jobs/backup-jobs.ts";
import { agentLink, callAgent, requiredAgentLink, runJobViaAgent } from "../appliance/control/control-client.ts";
import { loadConfig, type PlumConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { CODE_ROOT } from "../lib/paths.ts";
import { jobRequestSchema, type JobRequest } from "../backup/jobs/backup-requests.ts";
import { recoveryKit } from "../backup/recovery-kit.ts";
import { presentJobLine, presentSetLine } from "./backup-format.ts";
import { withBackupContext } from "./with-backup-context.ts";

/** The option or argument each request field comes from, to name it in a refusal. */
const FIELD_SOURCES: Record<string, string> = { setKind: "--kind", role: "--secondary", setId: "the set id", from: "--from" };

/** The same validation the control API applies, before either path: a bad request never reaches restic or the database. */
function jobRequestFrom(input: Record<string, unknown>): JobRequest {
  const parsed = jobRequestSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const field = String(issue.path[0] ?? "kind");
    const value = input[field];
    const given = `${FIELD_SOURCES[field] ?? field} ${typeof value === "string" ? value : JSON.stringify(value)}`;
    return issue.code === "invalid_value" ? `${given} is not valid: use one of ${issue.values.join(", ")}` : `${given}: ${issue.message}`;
  });
  throw new PlumError(problems.join("; "), { hint: "see `plumctl backup --help`" });
}

/** Run a job through the running agent, or here when no agent runs (then nothing serves, nothing to stop). */
async function runJob(config: PlumConfig, input: Record<string, unknown>, opts: { json?: boolean }): Promise<JobView> {
  const request = jobRequestFrom(input);
  const progress = (line: string) => {
    if (!opts.json) process.stderr.write(`  … ${line}\n`);
  };
  const link = agentLink(config.home);
  let job: JobView;
  if (link) {
    job = await runJobViaAgent(link, request, progress);
  } else {
    if (request.kind === "restore") process.stderr.write("  (no agent is running: restoring directly; start the appliance afterwards)\n");
    // The job machinery is loaded only on this path: through the agent the CLI needs none of it.
    const [{ BackupJobs }, { backupOperationsFor }, { startAuditedJob }] = await Promise.all([
      import("../backup/jobs/backup-jobs.ts"),
      import("../backup/jobs/backup-operations-impl.ts"),
      import("../appliance/audit/backup-job-audit.ts"),
    ]);
    job = await withBackupContext(config, async (ctx, db) => {
      const jobs = new BackupJobs();
      const { job: running, audited } = await startAuditedJob({ jobs, operations: backupOperationsFor(ctx), audit: db.audit }, request, "cli");
      jobs.follow(running.id, (e) => e.type === "progress" && progress(e.line));
      return audited;
    });
  }
  if (opts.json) process.stdout.write(JSON.stringify(job, null, 2) + "\n");
  else process.stdout.write(`${job.label}: ${job.status}${job.error ? ` — ${job.error}` : ""}\n`);
  if (job.status !== "succeeded") process.exitCode = 1;
  return job;
}

const json = (value: unknown) => process.stdout.write(JSON.stringify(value, null, 2) + "\n");

export function register(program: Command): void {
  const backup = program.command("backup").description("versioned, encrypted backup sets with restic (see README, Backups)");
  backup
    .command("run")
    .description("take a backup set now (and copy it to the secondary)")
    .option("--kind <kind>", "manual, scheduled or pre-upgrade", "manual")
    .option("--json", "print the job as JSON")
    .action(async (opts: { kind: string; json?: boolean }) => void (await runJob(loadConfig(), { kind: "backup", setKind: opts.kind }, opts)));
  backup
    .command("copy")
    .description("copy every set not yet copied to the secondary repository")
    .option("--json")
    .action(async (opts: { json?: boolean }) => void (await runJob(loadConfig(), { kind: "copy" }, opts)));
  backup
    .command("check")
    .description("check a repository's integrity (a rotating subset of the data)")
    .option("--secondary", "check the secondary instead of the primary")
    .option("--json")
    .action(
      async (opts: { secondary?: boolean; json?: boolean }) =>
        void (await runJob(loadConfig(), { kind: "check", role: opts.secondary ? "secondary" : "primary" }, opts)),
    );
  backup
    .command("forget")
    .description("apply the retention policy: forget the sets outside it and prune")
    .option("--json")
    .action(async (opts: { json?: boolean }) => void (await runJob(loadConfig(), { kind: "forget" }, opts)));
  backup
    .command("list")
    .description("list backup sets")
    .option("--json")
    .action((opts: { json?: boolean }) =>
      withBackupContext(loadConfig(), async (ctx) => {
        const sets = await ctx.sets.findAll({ order: [["startedAt", "DESC"]] });
        if (opts.json) json(sets.map((s) => s.toJSON()));
        else for (const s of sets) process.stdout.write(presentSetLine(s) + "\n");
      }),
    );
  backup
    .command("jobs")
    .description("the running agent's backup jobs (queued, running, the last finished ones), newest first")
    .option("--json")
    .action(async (opts: { json?: boolean }) => {
      const jobs = await callAgent<JobView[]>(requiredAgentLink(loadConfig().home), "GET", "/jobs");
      if (opts.json) json(jobs);
      else for (const j of jobs) process.stdout.write(presentJobLine(j) + "\n");
    });
  backup
    .command("show")
    .argument("<set>")
    .description("one set: status, snapshots in both repositories, manifest")
    .option("--json")
    .action((id: string, opts: { json?: boolean }) =>
      withBackupContext(loadConfig(), async (ctx) => {
        const set = await ctx.sets.findByPk(id);
        if (!set) throw new PlumError(`there is no backup set ${id}`, { hint: "see `plumctl backup list`" });
        if (opts.json) json(set.toJSON());
        else
          process.stdout.write(
            `${presentSetLine(set)}\n${JSON.stringify({ primary: set.primarySnapshots, secondary: set.secondarySnapshots, manifest: set.manifest }, null, 2)}\n`,
          );
      }),
    );
  backup
    .command("recovery-kit")
    .description("print what restores the data without this appliance: repository locations, password, key fingerprint, commands (audited)")
    .action(() =>
      withBackupContext(loadConfig(), async (ctx, db) => {
        process.stdout.write(await recoveryKit(ctx, readFileSync(path.join(CODE_ROOT, "backup", "restore", "plain-restore.md"), "utf8")));
        await db.audit.append({ actor: "cli", action: "backup.recovery-kit", detail: { shown: "stdout of plumctl on the host" } });
      }),
    );

  const restore = program
    .command("restore")
    .argument("<set>")
    .description("restore a backup set over production (a pre-restore set is taken first)")
    .option("--db", "restore the product database")
    .option("--files", "restore the files")
    .option("--from <repo>", "primary or secondary", "primary")
    .option("--yes", "confirm: the product's data since the set was taken is replaced")
    .option("--json")
    .action(async (setId: string, opts: { db?: boolean; files?: boolean; from: string; yes?: boolean; json?: boolean }) => {
      if (!opts.yes)
        throw new PlumError(`restoring set ${setId} replaces the product's data written since the set was taken`, {
          hint: `confirm with: plumctl restore ${setId} ${opts.db ? "--db " : ""}${opts.files ? "--files " : ""}--yes`,
        });
      const both = !opts.db && !opts.files;
      await runJob(loadConfig(), { kind: "restore", setId, db: both || !!opts.db, files: both || !!opts.files, from: opts.from }, opts);
    });

  restore
    .command("recover")
    .description("with the agent stopped: finish or undo an interrupted restore, as the agent's start does (--use: a database to put back as production's)")
    .option("--use <database>", "a database a restore kept or made, renamed to the product database (only when that one is missing)")
    .option("--json")
    .action(async (opts: { use?: string; json?: boolean }) => {
      const config = loadConfig();
      if (agentLink(config.home))
        throw new PlumError("the agent is running: it finishes or undoes interrupted restores when it starts", {
          hint: "stop the agent first, then run plumctl restore recover",
        });
      const [{ assertSafeToCreateProductDatabase, recoveryLines, restoreRecovery, useAsProductDatabase }, { auditRecoveredRestores }] = await Promise.all([
        import("../backup/restore/restore-recovery.ts"),
        import("../appliance/audit/backup-job-audit.ts"),
      ]);
      const lines = await withBackupContext(config, async (ctx, db) => {
        const used = opts.use ? [await useAsProductDatabase(ctx, opts.use)] : [];
        const recovery = await restoreRecovery({ ctx, by: "plumctl restore recover" });
        await auditRecoveredRestores(db.audit, recovery);
        const done = [...used, ...recoveryLines(recovery)];
        await db.audit.append({ actor: "cli", action: "backup.restore.recover", detail: { use: opts.use ?? null, recovered: done } });
        await assertSafeToCreateProductDatabase(ctx);
        return done;
      });
      if (opts.json) json(lines);
      else process.stdout.write(lines.length > 0 ? lines.map((l) => `${l}\n`).join("") : "nothing to recover\n");
    });

  const drill = program.command("drill").description("restore drills: restore into scratch, verify, measure the RTO, clean up");
  drill
    .command("run")
    .option("--set <id>", "a set (default: the latest good one)")
    .option("--json")
    .action(async (opts: { set?: string; json?: boolean }) => void (await runJob(loadConfig(), { kind: "drill", setId: opts.set }, opts)));
  drill
    .command("list")
    .option("--json")
    .action((opts: { json?: boolean }) =>
      withBackupContext(loadConfig(), async (ctx) => {
        const drills = await ctx.evidence.list({ kind: "drill", limit: 100 });
        if (opts.json) json(drills);
        else
          for (const d of drills)
            process.stdout.write(
              `${d.at.toISOString()}  ${d.outcome === "success" ? "passed" : "FAILED"}  set ${d.set_id ?? "—"}  RTO ${(d.detail as { rtoSeconds?: number }).rtoSeconds ?? "—"} s\n`,
            );
      }),
    );
}
