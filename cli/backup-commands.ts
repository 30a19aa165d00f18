import { readFileSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { openOpsDatabase, reachableServer } from "../appliance/ops-database.ts";
import { runJobViaAgent, runningAgent } from "../appliance/control/control-client.ts";
import { loadConfig, type PlumConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { createLogger } from "../lib/logger.ts";
import { homeLayout } from "../lib/paths.ts";
import { ensureSecrets } from "../lib/secrets.ts";
import { backupContextFor } from "../backup/backup-context.ts";
import { BackupJobs, type JobView } from "../backup/jobs/backup-jobs.ts";
import { backupOperationsFor } from "../backup/jobs/backup-operations-impl.ts";
import { startJob, type JobRequest } from "../backup/jobs/backup-requests.ts";
import { presentSetLine } from "./backup-format.ts";
import { recoveryKit } from "../backup/recovery-kit.ts";

/** Run a job through the running agent, or here when no agent runs (then nothing serves, nothing to stop). */
async function runJob(config: PlumConfig, request: JobRequest, opts: { json?: boolean }): Promise<JobView> {
  const layout = homeLayout(config.home);
  const progress = (line: string) => {
    if (!opts.json) process.stderr.write(`  … ${line}\n`);
  };
  const agent = runningAgent(layout.runDir);
  let job: JobView;
  if (agent) {
    job = await runJobViaAgent(agent, ensureSecrets(layout.secretsDir).controlToken, request, progress);
  } else {
    if (request.kind === "restore") process.stderr.write("  (no agent is running: restoring directly; start the appliance afterwards)\n");
    const db = await openOpsDatabase(config);
    try {
      const ctx = backupContextFor({ config, log: createLogger("plumctl", { level: "warn" }), pg: db.server, opsSequelize: db.sequelize });
      const jobs = new BackupJobs();
      const running = startJob(jobs, backupOperationsFor(ctx), request, "cli");
      jobs.follow(running.id, (e) => e.type === "progress" && progress(e.line));
      job = await jobs.done(running.id);
      await db.audit.append({
        actor: "cli",
        action: `backup.${request.kind}`,
        target: job.id,
        outcome: job.status === "succeeded" ? "success" : "failure",
        detail: request,
      });
    } finally {
      await db.close();
    }
  }
  if (opts.json) process.stdout.write(JSON.stringify(job, null, 2) + "\n");
  else process.stdout.write(`${job.label}: ${job.status}${job.error ? ` — ${job.error}` : ""}\n`);
  if (job.status !== "succeeded") process.exitCode = 1;
  return job;
}

async function withSets<T>(work: (ctx: ReturnType<typeof backupContextFor>) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openOpsDatabase(config);
  try {
    return await work(backupContextFor({ config, log: createLogger("plumctl", { level: "warn" }), pg: db.server, opsSequelize: db.sequelize }));
  } finally {
    await db.close();
  }
}

export function registerBackupCommands(program: Command): void {
  const backup = program.command("backup").description("versioned, encrypted backup sets with restic (see README, Backups)");
  backup
    .command("run")
    .description("take a backup set now (and copy it to the secondary)")
    .option("--kind <kind>", "manual or pre-upgrade", "manual")
    .option("--json", "print the job as JSON")
    .action(
      async (opts: { kind: "manual" | "scheduled" | "pre-upgrade"; json?: boolean }) =>
        void (await runJob(loadConfig(), { kind: "backup", setKind: opts.kind }, opts)),
    );
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
      withSets(async (ctx) => {
        const sets = await ctx.sets.findAll({ order: [["startedAt", "DESC"]] });
        if (opts.json)
          process.stdout.write(
            JSON.stringify(
              sets.map((s) => s.toJSON()),
              null,
              2,
            ) + "\n",
          );
        else for (const s of sets) process.stdout.write(presentSetLine(s) + "\n");
      }),
    );
  backup
    .command("show")
    .argument("<set>")
    .description("one set: status, snapshots in both repositories, manifest")
    .option("--json")
    .action((id: string, opts: { json?: boolean }) =>
      withSets(async (ctx) => {
        const set = await ctx.sets.findByPk(id);
        if (!set) throw new PlumError(`there is no backup set ${id}`, { hint: "see `plumctl backup list`" });
        process.stdout.write(
          (opts.json
            ? JSON.stringify(set.toJSON(), null, 2)
            : `${presentSetLine(set)}\n${JSON.stringify({ primary: set.primarySnapshots, secondary: set.secondarySnapshots, manifest: set.manifest }, null, 2)}`) +
            "\n",
        );
      }),
    );
  backup
    .command("recovery-kit")
    .description("print what restores the data without this appliance: repository locations, password, key fingerprint, commands (audited)")
    .action(async () => {
      const config = loadConfig();
      const db = await openOpsDatabase(config);
      try {
        const ctx = backupContextFor({
          config,
          log: createLogger("plumctl", { level: "warn" }),
          pg: await reachableServer(config),
          opsSequelize: db.sequelize,
        });
        process.stdout.write(await recoveryKit(ctx, readFileSync(path.join(import.meta.dirname, "restore", "plain-restore.md"), "utf8")));
        await db.audit.append({ actor: "cli", action: "backup.recovery-kit", detail: { shown: "stdout of plumctl on the host" } });
      } finally {
        await db.close();
      }
    });

  program
    .command("restore")
    .argument("<set>")
    .description("restore a backup set over production (a pre-restore set is taken first)")
    .option("--db", "restore the product database")
    .option("--files", "restore the files")
    .option("--from <repo>", "primary or secondary", "primary")
    .option("--yes", "confirm: the product's data since the set was taken is replaced")
    .option("--json")
    .action(async (setId: string, opts: { db?: boolean; files?: boolean; from: "primary" | "secondary"; yes?: boolean; json?: boolean }) => {
      if (!opts.yes)
        throw new PlumError(`restoring set ${setId} replaces the product's data written since the set was taken`, {
          hint: `confirm with: plumctl restore ${setId} ${opts.db ? "--db " : ""}${opts.files ? "--files " : ""}--yes`,
        });
      const both = !opts.db && !opts.files;
      await runJob(loadConfig(), { kind: "restore", setId, db: both || !!opts.db, files: both || !!opts.files, from: opts.from }, opts);
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
      withSets(async (ctx) => {
        const drills = await ctx.evidence.list({ kind: "drill", limit: 100 });
        if (opts.json) process.stdout.write(JSON.stringify(drills, null, 2) + "\n");
        else
          for (const d of drills)
            process.stdout.write(
              `${d.at.toISOString()}  ${d.outcome === "success" ? "passed" : "FAILED"}  set ${d.set_id ?? "—"}  RTO ${(d.detail as { rtoSeconds?: number }).rtoSeconds ?? "—"} s\n`,
            );
      }),
    );
}
