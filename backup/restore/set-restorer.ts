import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { PlumError } from "../../lib/errors.ts";
import { applyProductPrivileges } from "../../lib/db/product-roles.ts";
import type { CheckResult } from "../../product/validation/suite.ts";
import type { BackupSet } from "../backup-catalogue.ts";
import type { BackupContext } from "../backup-context.ts";
import type { Repository, RepositoryRole } from "../backup-types.ts";
import { displayLocation } from "../restic/restic-errors.ts";
import { Restic } from "../restic/restic.ts";
import { backupSetCreator } from "../sets/backup-set-creator.ts";
import { holdBackupWork } from "../work-lock.ts";
import { describeFailures } from "./manifest-verifier.ts";
import { databaseBack, discardKept, dropCopy, filesBack, keepFiles, placeFiles, swapDatabase } from "./production-swap.ts";
import { RestoreJournal, type RestoreNames, type RestoreRow } from "./restore-journal.ts";
import { scratchRestorer } from "./scratch-restorer.ts";

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
  /** The restore's row in the restore journal. */
  restoreId: number | null;
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

/** The steps of a restore over production, in order, as the restore journal names them. */
export const PRODUCTION_STEPS = ["pre-restore-set", "copy", "stop-product", "swap-database", "keep-files", "place-files", "start-product", "discard"] as const;
/** What undoing one takes, also in order. */
export const UNDO_STEPS = ["undo-files", "undo-database", "drop-copy", "restart-product"] as const;

const MAX_IDENTIFIER = 63; // PostgreSQL cuts longer names short, which could make two of ours collide

/** Names a restore gives what it makes and what it keeps; lower case, so an admin can type them in psql. */
export function restoreNames(ctx: BackupContext, setId: string, at: Date): RestoreNames {
  // Two restores never share a name, even when an earlier one crashed and left its copy behind.
  const random = randomBytes(2).toString("hex");
  const shortId = `${setId
    .toLowerCase()
    .replace(/[^0-9a-z]/g, "")
    .slice(0, 21)}_${random}`;
  const stamp = `${at.toISOString().replace(/[-:T]/g, "").slice(0, 14)}_${random}`;
  const names: RestoreNames = {
    live: ctx.databases.product,
    database: `${ctx.databases.product}_restore_${shortId}`,
    keptDatabase: `${ctx.databases.product}_before_restore_${stamp}`,
    filesDir: ctx.filesDir,
    // Beside the files directory, so that moving it into place is a rename on one filesystem.
    filesTarget: `${ctx.filesDir}.restore-${shortId}`,
    keptFiles: `${ctx.filesDir}.before-restore-${stamp}`,
  };
  for (const name of [names.database!, names.keptDatabase!]) {
    if (Buffer.byteLength(name) > MAX_IDENTIFIER)
      throw new PlumError(`the product database's name is too long to restore beside it: "${name}" would exceed ${MAX_IDENTIFIER} bytes`, {
        hint: 'restore with plain restic and pg_restore into a database of your choosing (README, "Restore without the appliance")',
      });
  }
  return names;
}

/**
 * Restore a backup set over production, journaled step by step in plum_ops (restore-journal.ts) so that a
 * crash at any instant is finished or undone by the next start (restore-recovery.ts). First a pre-restore set
 * (so the restore can itself be undone); then the product database into a NEW database and the files beside
 * the files directory, both verified against the set's manifest (any mismatch: the copies are dropped,
 * production was never touched); only then stop the product, swap (production-swap.ts), start it. A failure
 * after the product was stopped swaps back and starts it on what it had. plum_ops is never restored: a
 * product restore does not rewind the appliance's own records. Evidence is recorded either way.
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
  const journal = new RestoreJournal(ctx.opsSequelize);
  const startedAt = new Date();
  const outcome: Outcome = { startedAt, primaryInitialised: false, checks: [], notes: [] };
  const work = await holdBackupWork(ctx.pg, ctx.databases.ops);
  try {
    if (!parts.db && !parts.files) throw new PlumError("nothing to restore: choose the database, the files, or both");
    const repo = from === "primary" ? ctx.repos.primary : ctx.repos.secondary;
    if (!repo) throw new PlumError("no secondary repository is configured", { hint: "set backup.secondary, or restore from the primary" });
    const set = await ctx.sets.findByPk(setId);
    if (!set) throw new PlumError(`no backup set ${setId}`, { hint: "list the sets with: plumctl backup list" });
    if (set.status !== "succeeded") throw new PlumError(`set ${setId} is ${set.status}: only a succeeded set is restored`);
    const all = restoreNames(ctx, setId, startedAt);
    const names: RestoreNames = {
      live: all.live,
      ...(parts.db ? { database: all.database, keptDatabase: all.keptDatabase } : {}),
      ...(parts.files ? { filesDir: all.filesDir, filesTarget: all.filesTarget, keptFiles: all.keptFiles } : {}),
    };
    outcome.row = await journal.create({ kind: "production", setId, repository: from, parts, names, requestedBy: props.startedBy });
    await restoreJournaled({ ...props, restic, journal, row: outcome.row, set, repo, say, outcome });
  } catch (err) {
    await record(props, { ...outcome, outcome: "failure", error: (err as Error).message });
    throw err;
  } finally {
    await work.release();
  }
  const report = await record(props, { ...outcome, outcome: "success" });
  say(`restored set ${setId} in ${report.durationSeconds.toFixed(1)} s`);
  return report;
}

interface Outcome {
  startedAt: Date;
  row?: RestoreRow;
  preRestoreSetId?: string;
  primaryInitialised: boolean;
  checks: CheckResult[];
  notes: string[];
}

/** The journaled steps; any failure is journaled, undone as far as it got, and rethrown. */
async function restoreJournaled(
  props: Parameters<typeof setRestorer>[0] & {
    restic: Restic;
    journal: RestoreJournal;
    row: RestoreRow;
    set: BackupSet;
    repo: Repository;
    say: (line: string) => void;
    outcome: Outcome;
  },
): Promise<void> {
  const { ctx, restic, journal, set, repo, parts, say, outcome } = props;
  const id = props.row.id;
  let names = props.row.names;
  const step = <T>(name: (typeof PRODUCTION_STEPS)[number], work: () => Promise<T>, detail?: (r: T) => Record<string, unknown>) =>
    journal.step(id, name, work, detail);
  let productStopped = false;
  try {
    outcome.preRestoreSetId = await step(
      "pre-restore-set",
      async () => {
        if (!(await restic.isInitialised(ctx.repos.primary))) {
          await restic.init(ctx.repos.primary);
          outcome.primaryInitialised = true;
          outcome.notes.push(
            `the primary repository ${displayLocation(ctx.repos.primary.location)} was missing: a new, empty one was initialised to hold the pre-restore set`,
          );
          say(outcome.notes[outcome.notes.length - 1]);
        }
        say("taking a pre-restore set of what is about to be replaced");
        return (await backupSetCreator({ ctx, kind: "pre-restore", startedBy: props.startedBy, restic })).id;
      },
      (setId) => ({ setId, primaryInitialised: outcome.primaryInitialised }),
    );
    await journal.update(id, { preRestoreSetId: outcome.preRestoreSetId });

    const restored = await step(
      "copy",
      async () => {
        const copy = await scratchRestorer({
          ctx,
          restic,
          set,
          repo,
          target: { database: names.database, filesTarget: names.filesTarget },
          onProgress: say,
        });
        outcome.checks = copy.checks;
        if (copy.checks.some((c) => !c.passed)) {
          throw new PlumError(`set ${set.id} as restored does not match its manifest, so nothing was swapped: ${describeFailures(copy.checks)}`, {
            hint: "the repository may be damaged: run a check (plumctl backup check), or restore another set",
          });
        }
        // Given to the product's roles before the swap: at no instant does `plum` exist without its grants.
        if (parts.db && names.database) await applyProductPrivileges(ctx.pg, names.database, ctx.config.database.roles);
        return copy;
      },
      (copy) => ({ checks: copy.checks.length, restoredFiles: copy.filesDir ?? null }),
    );
    if (restored.filesDir) names = (await journal.update(id, { names: { ...names, restoredFiles: restored.filesDir } })).names;

    say("stopping the product");
    productStopped = true;
    await step("stop-product", () => props.instances.stopProduct());
    if (parts.db) {
      say(`swapping database ${names.database} in as ${names.live} (one transaction)`);
      await step("swap-database", () => swapDatabase(ctx.pg, names));
    }
    if (parts.files) {
      if (!existsSync(names.filesDir!)) {
        // A files directory that is gone altogether has nothing to keep.
        names = (await journal.update(id, { names: { ...names, keptFiles: null } })).names;
        await journal.note(id, "keep-files", "note", { skipped: `there is no files directory ${names.filesDir} to keep` });
      } else {
        say(`keeping ${names.filesDir} as ${names.keptFiles}`);
        await step("keep-files", () => keepFiles(names));
      }
      say(`moving ${names.restoredFiles} to ${names.filesDir}`);
      await step("place-files", () => placeFiles(names));
    }
    say("starting the product on the restored data");
    await step("start-product", () => props.instances.startProduct());
  } catch (err) {
    await undo({ ...props, names, productStopped, err: err as Error });
    throw err;
  }
  // The restore has succeeded: what is left is tidying up, which must not turn it into a failure.
  await step("discard", () => discardKept(ctx.pg, names, parts)).catch((err: Error) => {
    outcome.notes.push(
      `the data from before the restore could not be removed (${err.message}): the next start of the agent (or plumctl restore recover) removes ${[names.keptDatabase, names.keptFiles].filter(Boolean).join(" and ")}`,
    );
  });
  await journal.update(id, { status: "succeeded" });
}

/** Undo after a failure in this process: files and database back, the copy dropped, the product started on what it had. */
async function undo(props: Parameters<typeof restoreJournaled>[0] & { names: RestoreNames; productStopped: boolean; err: Error }): Promise<void> {
  const { ctx, journal, names, parts, say, err } = props;
  const id = props.row.id;
  try {
    if (props.productStopped) say(`the restore failed, swapping back: ${err.message}`);
    await undoSwap(ctx, journal, id, names, parts);
  } catch (undoErr) {
    // Left unfinished on purpose: the next start of the agent tries the undo again (or stops and says why).
    await journal.update(id, { error: `${err.message}; undoing it failed too: ${(undoErr as Error).message}` }).catch(() => undefined);
    throw new PlumError(`the restore failed (${err.message}) and swapping back failed too: ${(undoErr as Error).message}`, {
      hint: `the data before the restore is kept as database ${names.keptDatabase ?? "-"} and folder ${names.keptFiles ?? "-"}: restart the agent (its start tries the undo again), or stop it and run plumctl restore recover`,
    });
  }
  if (props.productStopped) {
    say("starting the product on the data it had");
    try {
      await journal.step(id, "restart-product", () => props.instances.startProduct());
    } catch (startErr) {
      await journal
        .update(id, { status: "failed", error: `${err.message}; the data was put back, but the product did not start again` })
        .catch(() => undefined);
      throw new PlumError(
        `the restore failed (${err.message}); the data was swapped back, but the product did not start again: ${(startErr as Error).message}`,
        { hint: "start it from the console or with plumctl, and see its log" },
      );
    }
  }
  await journal.update(id, { status: "failed", error: err.message }).catch(() => undefined);
}

/** Files back, database back, copy dropped: each a journaled, idempotent step (also what recovery runs). */
export async function undoSwap(ctx: BackupContext, journal: RestoreJournal, id: number, names: RestoreNames, parts: RestoreRow["parts"]): Promise<string[]> {
  const did: string[] = [];
  const done = (list: string[]) => ({ did: list });
  if (parts.files && names.filesDir) did.push(...(await journal.step(id, "undo-files", () => filesBack(names), done)));
  if (parts.db && names.database) did.push(...(await journal.step(id, "undo-database", () => databaseBack(ctx.pg, names), done)));
  did.push(...(await journal.step(id, "drop-copy", () => dropCopy(ctx.pg, names), done)));
  return did;
}

async function record(props: Parameters<typeof setRestorer>[0], outcome: Outcome & { outcome: "success" | "failure"; error?: string }): Promise<RestoreReport> {
  const finishedAt = new Date();
  const durationSeconds = (finishedAt.getTime() - outcome.startedAt.getTime()) / 1000;
  const report: RestoreReport = {
    restoreId: outcome.row?.id ?? null,
    setId: props.setId,
    from: props.from,
    parts: props.parts,
    preRestoreSetId: outcome.preRestoreSetId ?? "",
    primaryInitialised: outcome.primaryInitialised,
    startedAt: outcome.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSeconds,
    checks: outcome.checks,
    notes: outcome.notes,
  };
  await props.ctx.evidence.record({
    kind: "restore",
    outcome: outcome.outcome,
    setId: props.setId,
    repository: props.from,
    detail: { ...report, rtoSeconds: durationSeconds, startedBy: props.startedBy, error: outcome.error },
  });
  return report;
}
