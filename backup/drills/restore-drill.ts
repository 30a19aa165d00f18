import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import type { Sequelize } from "sequelize";
import { PlumError } from "../../lib/errors.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { catalogueChecks } from "../../product/validation/catalogue-suite.ts";
import { ledgerChecks } from "../../product/validation/ledger-suite.ts";
import type { CheckResult, SuiteReport } from "../../product/validation/suite.ts";
import type { BackupSet } from "../backup-catalogue.ts";
import type { BackupContext } from "../backup-context.ts";
import type { RepositoryRole } from "../backup-types.ts";
import { describeFailures } from "../restore/manifest-verifier.ts";
import { scratchRestorer } from "../restore/scratch-restorer.ts";
import { RestoreJournal } from "../restore/restore-journal.ts";
import { dropDatabase } from "../restore/whole-databases.ts";
import { Restic } from "../restic/restic.ts";
import { holdBackupWork } from "../work-lock.ts";

/** What a drill restored, while it is there: the hook may change it (the tests tamper with it). */
export interface DrillScratch {
  database: string;
  filesDir: string;
  sequelize: Sequelize;
}

export interface DrillReport {
  setId: string | null;
  repository: RepositoryRole;
  startedAt: string;
  finishedAt: string;
  /** From the start until the restored data was verified and the suites had run (cleanup excluded). */
  rtoSeconds: number;
  /** Row counts and file hashes matched the manifest. */
  verified: boolean;
  passed: boolean;
  checks: CheckResult[];
  suites: SuiteReport[];
  error?: string;
}

/** The product suites a restored database must pass; they read the database only. */
const SUITES: Array<[string, typeof ledgerChecks]> = [
  ["ledger", ledgerChecks],
  ["catalogue", catalogueChecks],
];

async function drilledSet(ctx: BackupContext, setId: string | undefined): Promise<BackupSet> {
  const set = setId ? await ctx.sets.findByPk(setId) : await ctx.sets.findOne({ where: { status: "succeeded" }, order: [["finishedAt", "DESC"]] });
  if (!set) throw new PlumError(setId ? `no backup set ${setId}` : "no succeeded backup set to drill", { hint: "take a backup first: plumctl backup run" });
  if (set.status !== "succeeded") throw new PlumError(`set ${set.id} is ${set.status}, not succeeded: only a good set can be drilled`);
  return set;
}

async function runSuites(sequelize: Sequelize): Promise<SuiteReport[]> {
  const reports: SuiteReport[] = [];
  for (const [suite, run] of SUITES) {
    const checks = await run({ baseUrl: "", sequelize });
    reports.push({ suite, passed: checks.every((c) => c.passed), checks });
  }
  return reports;
}

/**
 * A restore drill: restore a set (the latest succeeded one by default) into a scratch database and a scratch
 * folder, verify row counts and file hashes against its manifest, run the ledger and catalogue suites on the
 * scratch database, and measure how long that took (the RTO). Scratch is always removed. Every drill, passed
 * or failed, is recorded as evidence; a failed drill is a report with `passed: false`, not a throw.
 */
export async function restoreDrill(props: {
  ctx: BackupContext;
  setId?: string;
  from?: RepositoryRole;
  startedBy: string;
  restic?: Restic;
  onProgress?: (line: string) => void;
  hooks?: { afterRestore?(scratch: DrillScratch): Promise<void> };
}): Promise<DrillReport> {
  const { ctx } = props;
  const say = props.onProgress ?? (() => undefined);
  const restic = props.restic ?? new Restic({ log: ctx.log });
  const from = props.from ?? "primary";
  const repo = from === "primary" ? ctx.repos.primary : ctx.repos.secondary;
  const started = Date.now();
  const scratchId = randomBytes(4).toString("hex");
  const database = `${ctx.databases.product}_drill_${scratchId}`;
  const filesTarget = path.join(ctx.workDir, `drill-${scratchId}`);
  let setId: string | null = props.setId ?? null;
  let checks: CheckResult[] = [];
  let suites: SuiteReport[] = [];
  let error: string | undefined;
  let sequelize: Sequelize | undefined;
  let rtoSeconds: number | undefined;
  // Journaled (kind "drill"): a crash leaves no scratch database or folder that a restarted agent does not remove.
  const journal = new RestoreJournal(ctx.opsSequelize);
  let restoreId: number | undefined;
  const work = await holdBackupWork(ctx.pg, ctx.databases.ops);
  try {
    try {
      if (!repo) throw new PlumError("no secondary repository is configured", { hint: "set backup.secondary, or drill from the primary" });
      const set = await drilledSet(ctx, props.setId);
      setId = set.id;
      restoreId = (
        await journal.create({
          kind: "drill",
          setId,
          repository: from,
          parts: { db: true, files: true },
          names: { database, filesTarget },
          requestedBy: props.startedBy,
        })
      ).id;
      say(`drill of set ${set.id} from the ${from} repository into ${database}`);
      const restored = await journal.step(
        restoreId,
        "copy",
        () =>
          scratchRestorer({
            ctx,
            restic,
            set,
            repo,
            target: { database, filesTarget },
            onProgress: say,
            beforeVerify: async ({ filesDir }) => {
              sequelize = openSequelize(clientConfig(ctx.pg, database), { poolMax: 2 });
              await props.hooks?.afterRestore?.({ database, filesDir: filesDir!, sequelize });
            },
          }),
        (r) => ({ checks: r.checks.length, failed: r.checks.filter((c) => !c.passed).length }),
      );
      checks = restored.checks;
      if (checks.some((c) => !c.passed)) throw new PlumError(`the restore does not match the manifest of set ${set.id}: ${describeFailures(checks)}`);
      say("running the ledger and catalogue suites on the restored database");
      suites = await journal.step(restoreId, "suites", () => runSuites(sequelize!));
      const failedSuites = suites.filter((s) => !s.passed);
      if (failedSuites.length > 0)
        throw new PlumError(`suites failed on the restored database: ${failedSuites.map((s) => `${s.suite} (${describeFailures(s.checks)})`).join("; ")}`);
    } catch (err) {
      error = (err as Error).message;
    }
    rtoSeconds = (Date.now() - started) / 1000;
  } finally {
    await sequelize?.close().catch(() => undefined);
    const id = restoreId;
    const removing = () => cleanUp(ctx, database, filesTarget, say);
    await (id === undefined ? removing() : journal.step(id, "drop-copy", removing).catch(() => undefined));
    if (id !== undefined) await journal.update(id, { status: error ? "failed" : "succeeded", error: error ?? null }).catch(() => undefined);
    await work.release();
  }
  rtoSeconds ??= (Date.now() - started) / 1000;
  const verified = checks.length > 0 && checks.every((c) => c.passed);
  const report: DrillReport = {
    setId,
    repository: from,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date().toISOString(),
    rtoSeconds,
    verified,
    passed: !error,
    checks,
    suites,
    error,
  };
  say(error ? `drill FAILED after ${rtoSeconds.toFixed(1)} s: ${error}` : `drill passed: RTO ${rtoSeconds.toFixed(1)} s`);
  const detail = {
    restoreId: restoreId ?? null,
    setId,
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    rtoSeconds,
    verified,
    checks,
    suites,
    error,
  };
  await ctx.evidence.record({ kind: "drill", outcome: report.passed ? "success" : "failure", setId: setId ?? undefined, repository: from, detail });
  return report;
}

/** Scratch goes whatever happened; a cleanup that fails is logged, never hides the drill's own result. */
async function cleanUp(ctx: BackupContext, database: string, filesTarget: string, say: (line: string) => void): Promise<void> {
  say(`removing scratch database ${database} and ${filesTarget}`);
  await dropDatabase(ctx.pg, database).catch((err: Error) => ctx.log.error({ err: err.message, database }, "drill: could not drop the scratch database"));
  await rm(filesTarget, { recursive: true, force: true }).catch((err: Error) =>
    ctx.log.error({ err: err.message, filesTarget }, "drill: could not remove the scratch folder"),
  );
}
