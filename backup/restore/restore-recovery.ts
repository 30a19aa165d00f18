import { existsSync, readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { PlumError } from "../../lib/errors.ts";
import type { BackupContext } from "../backup-context.ts";
import { Restic } from "../restic/restic.ts";
import { runningSetsReconciler } from "../sets/set-reconciler.ts";
import { tryExclusiveBackupWork } from "../work-lock.ts";
import { discardKept, dropCopy } from "./production-swap.ts";
import { RestoreJournal, type JournalEntry, type RestoreRow } from "./restore-journal.ts";
import { UNDO_STEPS, undoSwap } from "./set-restorer.ts";
import { databaseExists, databasesStartingWith, dropDatabase, renameDatabases } from "./whole-databases.ts";

/** How one interrupted restore ended: undone (the data from before stands) or finished (the restored data stands). */
export interface RecoveredRestore {
  id: number;
  kind: RestoreRow["kind"];
  setId: string | null;
  requestedBy: string;
  /** "during swap-database", "after copy", "before its first step". */
  interruptedAt: string;
  action: "undone" | "finished";
  did: string[];
}

export interface Recovery {
  restores: RecoveredRestore[];
  /** Sets left running, reconciled. */
  sets: string[];
  /** Leftover copies and folders removed. */
  debris: string[];
  /** What was left alone, and why (an admin decides). */
  notes: string[];
}

/** One line per thing recovered, for `agent.start`'s audit detail and the log. */
export function recoveryLines(r: Recovery): string[] {
  return [
    ...r.restores.map(
      (x) =>
        `${x.kind === "production" ? "restore" : x.kind === "copy" ? "restore copy" : "drill"} ${x.id} of set ${x.setId ?? "-"} interrupted ${x.interruptedAt}: ${x.action}`,
    ),
    ...r.sets,
    ...r.debris,
    ...r.notes,
  ];
}

/**
 * The restore over production goes forward only once the product was being started on the restored data (it
 * may have written to it since); before that, nothing has used the restored copy and undoing loses nothing.
 * A restore that failed in its own process (a `failed` entry) or that recovery began to undo stays undone.
 */
export function recoveryDirection(entries: JournalEntry[]): "forward" | "back" {
  const undoing = entries.some((e) => e.phase === "failed" || (UNDO_STEPS as readonly string[]).includes(e.step));
  const started = entries.some((e) => e.step === "start-product" && e.phase === "started");
  return started && !undoing ? "forward" : "back";
}

/** Where the journal ends: during the newest step started and not done, or after the newest one done. */
export function interruptedAt(entries: JournalEntry[]): string {
  const last = [...entries].reverse().find((e) => e.phase === "started" || e.phase === "done");
  if (!last) return "before its first step";
  return `${last.phase === "started" ? "during" : "after"} ${last.step}`;
}

/**
 * Finish or undo every restore an interrupted process left (over production, copies, drills), reconcile the
 * backup sets it left running, and remove the copies and folders no restore is using. Run by the agent at its
 * start before anything creates or migrates the product database, and by `plumctl restore recover`. Reads
 * only the journal and what exists: nothing of the interrupted process survives. Takes the backup work lock
 * exclusively: when another process is running a backup job, it changes nothing and says so.
 * A state no restore can leave throws a SwapStateError that names what exists: the caller stops.
 */
export async function restoreRecovery(props: { ctx: BackupContext; by: string; restic?: Restic }): Promise<Recovery> {
  const { ctx, by } = props;
  const restic = props.restic ?? new Restic({ log: ctx.log });
  const result: Recovery = { restores: [], sets: [], debris: [], notes: [] };
  const lock = await tryExclusiveBackupWork(ctx.pg, ctx.databases.ops);
  if (!lock) {
    result.notes.push("another process is running a backup job (it holds the backup work lock): its restores and sets are left to it");
    return result;
  }
  try {
    const journal = new RestoreJournal(ctx.opsSequelize);
    for (const row of await journal.unfinished()) result.restores.push(await recoverOne(ctx, journal, row, by));
    result.debris.push(...(await removeDebris(ctx, journal, result.notes)));
    result.sets.push(...(await runningSetsReconciler(ctx, restic, by)));
  } finally {
    await lock.release();
  }
  return result;
}

async function recoverOne(ctx: BackupContext, journal: RestoreJournal, row: RestoreRow, by: string): Promise<RecoveredRestore> {
  const entries = await journal.entries(row.id);
  const at = interruptedAt(entries);
  const direction = row.kind === "production" ? recoveryDirection(entries) : "back";
  ctx.log.warn({ restore: row.id, kind: row.kind, interrupted: at, direction }, "finishing an interrupted restore");
  await journal.note(row.id, "recovery", "note", { by, interruptedAt: at, direction });
  let did: string[];
  try {
    if (row.kind === "production")
      did =
        direction === "forward"
          ? await journal.step(row.id, "discard", () => discardKept(ctx.pg, row.names, row.parts))
          : await undoSwap(ctx, journal, row.id, row.names, row.parts);
    else
      did = await journal.step(
        row.id,
        "drop-copy",
        () => dropCopy(ctx.pg, copyNames(row, entries)),
        (list) => ({ did: list }),
      );
  } catch (err) {
    throw new PlumError(
      `restore ${row.id} of set ${row.setId ?? "-"} was interrupted ${at} and cannot be ${direction === "forward" ? "finished" : "undone"}: ${(err as Error).message}`,
      {
        hint: (err as PlumError).hint ?? "see the restore journal (plum_ops, table restore_journal), then run plumctl restore recover",
        cause: err,
      },
    );
  }
  const action = direction === "forward" ? "finished" : "undone";
  const error =
    action === "undone"
      ? `interrupted ${at} and undone by ${by}: ${row.kind === "production" ? "production has the data it had before the restore" : "the copy was removed"}`
      : null;
  const finishedAt = new Date();
  await journal.update(row.id, {
    status: action === "finished" ? "succeeded" : "failed",
    error,
    recovery: { by, action, at: finishedAt.toISOString(), interruptedAt: at },
  });
  const detail = {
    restoreId: row.id,
    setId: row.setId,
    from: row.repository,
    parts: row.parts,
    purpose: row.purpose ?? undefined,
    startedBy: row.requestedBy,
    startedAt: row.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    preRestoreSetId: row.preRestoreSetId ?? undefined,
    interrupted: true,
    interruptedAt: at,
    recovery: action,
    recoveredBy: by,
    did,
    ...(error ? { error } : {}),
  };
  await ctx.evidence.record({
    kind: row.kind === "drill" ? "drill" : "restore",
    outcome: action === "finished" ? "success" : "failure",
    setId: row.setId ?? undefined,
    repository: row.repository,
    detail: row.kind === "drill" ? { ...detail, verified: false, checks: [], suites: [] } : detail,
  });
  return { id: row.id, kind: row.kind, setId: row.setId, requestedBy: row.requestedBy, interruptedAt: at, action, did };
}

/** A copy's database is its own only once its copy step began (before that the name may be anyone's). */
function copyNames(row: RestoreRow, entries: JournalEntry[]): RestoreRow["names"] {
  const began = entries.some((e) => e.step === "copy" && e.phase === "started");
  return began ? row.names : { ...row.names, database: undefined };
}

/**
 * Copies of sets no running restore uses (`<product>_restore_*`, `<product>_drill_*` databases; `files.restore-*`
 * folders and drill folders) are dropped: a set is still in its repository. What a restore kept from before
 * (`<product>_before_restore_*`, `files.before-restore-*`) goes only when the journal says that restore
 * succeeded (its discard failed); one no journal entry explains may be the only copy of some data and stays.
 */
async function removeDebris(ctx: BackupContext, journal: RestoreJournal, notes: string[]): Promise<string[]> {
  const did: string[] = [];
  const product = ctx.databases.product;
  const productExists = await databaseExists(ctx.pg, product);
  for (const prefix of [`${product}_restore_`, `${product}_drill_`]) {
    for (const name of await databasesStartingWith(ctx.pg, prefix)) {
      if (!productExists && prefix.endsWith("_restore_")) {
        notes.push(`database ${product} does not exist: the restored copy ${name} is kept, it may be what production should have`);
        continue;
      }
      await dropDatabase(ctx.pg, name);
      did.push(`dropped leftover database ${name}`);
    }
  }
  for (const name of await databasesStartingWith(ctx.pg, `${product}_before_restore_`)) {
    const owners = await journal.naming("keptDatabase", name);
    if (productExists && owners.some((r) => r.status === "succeeded")) {
      await dropDatabase(ctx.pg, name);
      did.push(`dropped database ${name}, kept from before restore ${owners[0].id}, which succeeded`);
    } else notes.push(`database ${name} holds data from before a restore that no journal entry explains: it is kept; drop it when it is not needed`);
  }
  const parent = path.dirname(ctx.filesDir);
  const base = path.basename(ctx.filesDir);
  for (const entry of existsSync(parent) ? readdirSync(parent) : []) {
    const full = path.join(parent, entry);
    if (entry.startsWith(`${base}.restore-`)) {
      await rm(full, { recursive: true, force: true });
      did.push(`removed leftover folder ${full}`);
    } else if (entry.startsWith(`${base}.before-restore-`)) {
      const owners = await journal.naming("keptFiles", full);
      if (existsSync(ctx.filesDir) && owners.some((r) => r.status === "succeeded")) {
        await rm(full, { recursive: true, force: true });
        did.push(`removed ${full}, kept from before restore ${owners[0].id}, which succeeded`);
      } else notes.push(`folder ${full} holds files from before a restore that no journal entry explains: it is kept; remove it when it is not needed`);
    }
  }
  for (const entry of existsSync(ctx.workDir) ? readdirSync(ctx.workDir) : []) {
    if (!entry.startsWith("drill-")) continue;
    await rm(path.join(ctx.workDir, entry), { recursive: true, force: true });
    did.push(`removed leftover drill folder ${path.join(ctx.workDir, entry)}`);
  }
  return did;
}

/**
 * Before anything creates a missing product database: refuse while a restore over production is unfinished
 * or a database from before a restore exists, naming it and what resolves it. An empty `plum` created then
 * would be served as if it were production's data, with the real data parked beside it.
 */
export async function assertSafeToCreateProductDatabase(ctx: BackupContext): Promise<void> {
  const product = ctx.databases.product;
  if (await databaseExists(ctx.pg, product)) return;
  const [unfinished] = await new RestoreJournal(ctx.opsSequelize).unfinished("production");
  const kept = await databasesStartingWith(ctx.pg, `${product}_before_restore_`);
  const copies = await databasesStartingWith(ctx.pg, `${product}_restore_`);
  if (!unfinished && kept.length === 0 && copies.length === 0) return;
  const candidate = kept[kept.length - 1] ?? copies[copies.length - 1];
  const why = unfinished
    ? `restore ${unfinished.id} of set ${unfinished.setId} is not finished`
    : kept.length > 0
      ? `"${kept[kept.length - 1]}" holds the product's data from before a restore that did not finish`
      : `"${copies[copies.length - 1]}" is a copy a restore made`;
  throw new PlumError(`database "${product}" does not exist and ${why}, so the agent does not create an empty "${product}"`, {
    hint: candidate
      ? `put the data back with: plumctl restore recover --use ${candidate} (or in psql: ALTER DATABASE "${candidate}" RENAME TO "${product}";), then start the agent again`
      : "run plumctl restore recover once the process running that restore has ended, then start the agent again",
  });
}

/**
 * An admin's decision where the journal cannot decide (a crash of a restore made before the journal existed,
 * or a database renamed by hand): database `name`, one a restore made or kept, becomes the product database.
 * Refused while a product database exists: then nothing is missing, and a restore is the way to replace it.
 */
export async function useAsProductDatabase(ctx: BackupContext, name: string): Promise<string> {
  const product = ctx.databases.product;
  if (!name.startsWith(`${product}_before_restore_`) && !name.startsWith(`${product}_restore_`))
    throw new PlumError(`--use takes a database a restore kept or made (${product}_before_restore_… or ${product}_restore_…), not "${name}"`, {
      hint: "list them in psql with: \\l",
    });
  if (await databaseExists(ctx.pg, product))
    throw new PlumError(`database "${product}" exists: there is nothing to put back`, {
      hint: "to replace production's data, restore a set: plumctl restore SET",
    });
  if (!(await databaseExists(ctx.pg, name))) throw new PlumError(`there is no database "${name}"`, { hint: "list them in psql with: \\l" });
  await renameDatabases(ctx.pg, [[name, product]]);
  return `renamed database ${name} to ${product}`;
}
