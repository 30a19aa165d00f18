import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { PlumError } from "../../lib/errors.ts";
import type { CheckResult } from "../../product/validation/suite.ts";
import type { BackupSet } from "../backup-catalogue.ts";
import type { BackupContext } from "../backup-context.ts";
import type { Repository, RepositoryRole } from "../backup-types.ts";
import { Restic } from "../restic/restic.ts";
import { backupSetCreator } from "../sets/backup-set-creator.ts";
import { describeFailures } from "./manifest-verifier.ts";
import { discardKept, productionSwap, type SwapPlan } from "./production-swap.ts";
import { scratchRestorer, type ScratchRestore } from "./scratch-restorer.ts";
import { dropDatabase } from "./whole-databases.ts";

export interface RestoreParts {
  db: boolean;
  files: boolean;
}

/** Stops and starts the production instance around the swap (the agent's runtime). */
export interface ProductInstances {
  stopProduct(): Promise<void>;
  startProduct(): Promise<void>;
}

export interface RestoreReport {
  setId: string;
  from: RepositoryRole;
  parts: RestoreParts;
  /** The set taken just before, holding what the restore replaced. */
  preRestoreSetId: string;
  /** The primary repository was gone: a new one was initialised so the pre-restore set could still be taken. */
  primaryInitialised: boolean;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  checks: CheckResult[];
  notes: string[];
}

const MAX_IDENTIFIER = 63; // PostgreSQL cuts longer names short, which could make two of ours collide

/** Names a restore gives what it makes and what it keeps; lower case, so an admin can type them in psql. */
function restoreNames(ctx: BackupContext, setId: string, at: Date) {
  // Two restores of one set never share a name, even when an earlier one crashed and left its copy behind.
  const shortId = `${setId
    .toLowerCase()
    .replace(/[^0-9a-z]/g, "")
    .slice(0, 21)}_${randomBytes(2).toString("hex")}`;
  const stamp = at.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const names = {
    database: `${ctx.databases.product}_restore_${shortId}`,
    keptDatabase: `${ctx.databases.product}_before_restore_${stamp}`,
    // Beside the files directory, so that moving it into place is a rename on one filesystem.
    filesTarget: `${ctx.filesDir}.restore-${shortId}`,
    keptFiles: `${ctx.filesDir}.before-restore-${stamp}`,
  };
  for (const name of [names.database, names.keptDatabase]) {
    if (Buffer.byteLength(name) > MAX_IDENTIFIER)
      throw new PlumError(`the product database's name is too long to restore beside it: "${name}" would exceed ${MAX_IDENTIFIER} bytes`, {
        hint: 'restore with plain restic and pg_restore into a database of your choosing (README, "Restore without the appliance")',
      });
  }
  return names;
}

/**
 * Restore a backup set over production. First a pre-restore set (so the restore can itself be undone);
 * then the product database into a NEW database and the files beside the files directory, both verified
 * against the set's manifest (any mismatch: the copies are dropped, production was never touched); only then
 * stop the product, swap by rename (the old database and files kept until the end), start it. A failure
 * after the swap began swaps back. plum_ops is never restored: a product restore does not rewind the
 * appliance's own records. Evidence is recorded either way.
 */
export async function setRestorer(props: {
  ctx: BackupContext;
  setId: string;
  parts: RestoreParts;
  from: RepositoryRole;
  startedBy: string;
  instances: ProductInstances;
  restic?: Restic;
  onProgress?: (line: string) => void;
}): Promise<RestoreReport> {
  const { ctx, setId, parts, from } = props;
  const say = props.onProgress ?? (() => undefined);
  const restic = props.restic ?? new Restic({ log: ctx.log });
  const startedAt = new Date();
  const notes: string[] = [];
  let preRestoreSetId: string | undefined;
  let primaryInitialised = false;
  let checks: CheckResult[] = [];
  try {
    if (!parts.db && !parts.files) throw new PlumError("nothing to restore: choose the database, the files, or both");
    const names = restoreNames(ctx, setId, startedAt);
    const repo = from === "primary" ? ctx.repos.primary : ctx.repos.secondary;
    if (!repo) throw new PlumError("no secondary repository is configured", { hint: "set backup.secondary, or restore from the primary" });
    const set = await ctx.sets.findByPk(setId);
    if (!set) throw new PlumError(`no backup set ${setId}`, { hint: "list the sets with: plumctl backup list" });
    if (set.status !== "succeeded") throw new PlumError(`set ${setId} is ${set.status}: only a succeeded set is restored`);

    if (!(await restic.isInitialised(ctx.repos.primary))) {
      await restic.init(ctx.repos.primary);
      primaryInitialised = true;
      notes.push(`the primary repository ${ctx.repos.primary.location} was missing: a new, empty one was initialised to hold the pre-restore set`);
      say(notes[notes.length - 1]);
    }
    say("taking a pre-restore set of what is about to be replaced");
    const preRestore = await backupSetCreator({ ctx, kind: "pre-restore", startedBy: props.startedBy, restic });
    preRestoreSetId = preRestore.id;

    const restored = await restoreVerified({ ctx, restic, set, repo, parts, names, say });
    checks = restored.checks;
    const plan: SwapPlan = {
      database: parts.db ? { live: ctx.databases.product, restored: names.database, kept: names.keptDatabase } : undefined,
      files: restored.filesDir ? { live: ctx.filesDir, restored: restored.filesDir, kept: names.keptFiles } : undefined,
    };
    await swapInto(props, plan, say).catch(async (err: unknown) => {
      await dropDatabase(ctx.pg, names.database).catch(() => undefined);
      await rm(names.filesTarget, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    });
    // The restore has succeeded: what is left is tidying up, which must not turn it into a failure.
    await rm(names.filesTarget, { recursive: true, force: true })
      .then(() => discardKept(ctx.pg, plan))
      .catch((err: Error) => {
        notes.push(
          `the data from before the restore could not be removed (${err.message}): drop database ${names.keptDatabase} and remove ${names.keptFiles} by hand`,
        );
      });
  } catch (err) {
    await record(props, { outcome: "failure", startedAt, preRestoreSetId, primaryInitialised, checks, notes, error: (err as Error).message });
    throw err;
  }
  const report = await record(props, { outcome: "success", startedAt, preRestoreSetId, primaryInitialised, checks, notes });
  say(`restored set ${setId} in ${report.durationSeconds.toFixed(1)} s`);
  return report;
}

/** Restore into the new database and the folder beside the files directory, and verify; on any failure both go. */
async function restoreVerified(props: {
  ctx: BackupContext;
  restic: Restic;
  set: BackupSet;
  repo: Repository;
  parts: RestoreParts;
  names: ReturnType<typeof restoreNames>;
  say: (line: string) => void;
}): Promise<ScratchRestore> {
  const { ctx, set, names, parts } = props;
  try {
    const restored = await scratchRestorer({
      ctx,
      restic: props.restic,
      set,
      repo: props.repo,
      target: { database: parts.db ? names.database : undefined, filesTarget: parts.files ? names.filesTarget : undefined },
      onProgress: props.say,
    });
    if (restored.checks.some((c) => !c.passed)) {
      throw new PlumError(`set ${set.id} as restored does not match its manifest, so nothing was swapped: ${describeFailures(restored.checks)}`, {
        hint: "the repository may be damaged: run a check (plumctl backup check), or restore another set",
      });
    }
    return restored;
  } catch (err) {
    await dropDatabase(ctx.pg, names.database);
    await rm(names.filesTarget, { recursive: true, force: true });
    throw err;
  }
}

/** Stop the product, swap, start it. Any failure swaps back and starts the product on what it had. */
async function swapInto(props: Parameters<typeof setRestorer>[0], plan: SwapPlan, say: (line: string) => void): Promise<void> {
  say("stopping the product");
  await props.instances.stopProduct();
  const swap = productionSwap(props.ctx.pg, plan, say);
  try {
    await swap.run();
    say("starting the product on the restored data");
    await props.instances.startProduct();
  } catch (err) {
    say(`swap failed, swapping back: ${(err as Error).message}`);
    try {
      await swap.undo();
    } catch (undoErr) {
      throw new PlumError(`the restore failed (${(err as Error).message}) and swapping back failed too: ${(undoErr as Error).message}`, {
        hint: `the data before the restore is kept as database ${plan.database?.kept ?? "-"} and folder ${plan.files?.kept ?? "-"}: rename them back by hand`,
      });
    }
    say("starting the product on the data it had");
    await props.instances.startProduct().catch((startErr: Error) => {
      throw new PlumError(
        `the restore failed (${(err as Error).message}); the data was swapped back, but the product did not start again: ${startErr.message}`,
        { hint: "start it from the console or with plumctl, and see its log" },
      );
    });
    throw err;
  }
}

async function record(
  props: Parameters<typeof setRestorer>[0],
  outcome: {
    outcome: "success" | "failure";
    startedAt: Date;
    preRestoreSetId?: string;
    primaryInitialised: boolean;
    checks: CheckResult[];
    notes: string[];
    error?: string;
  },
): Promise<RestoreReport> {
  const finishedAt = new Date();
  const report: RestoreReport = {
    setId: props.setId,
    from: props.from,
    parts: props.parts,
    preRestoreSetId: outcome.preRestoreSetId ?? "",
    primaryInitialised: outcome.primaryInitialised,
    startedAt: outcome.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSeconds: (finishedAt.getTime() - outcome.startedAt.getTime()) / 1000,
    checks: outcome.checks,
    notes: outcome.notes,
  };
  await props.ctx.evidence.record({
    kind: "restore",
    outcome: outcome.outcome,
    setId: props.setId,
    repository: props.from,
    detail: { ...report, startedBy: props.startedBy, error: outcome.error },
  });
  return report;
}
