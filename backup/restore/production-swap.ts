import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import type { PgServer } from "../../lib/db/database.ts";
import { PlumError } from "../../lib/errors.ts";
import type { RestoreNames } from "./restore-journal.ts";
import { databaseExists, dropDatabase, renameDatabases } from "./whole-databases.ts";

/**
 * The swap of a restore over production, and its two ways out after a failure or a crash: undo (the data
 * from before is put back, the copy goes) and discard (the restore stands, what it kept goes).
 *
 * The database swap is one transaction of two renames (`plum → kept`, `copy → plum`): at every instant exactly
 * one database is named `plum`, holding the old data or the restored data. The files directory takes two
 * renames (`files → kept`, `restored → files`), each journaled; between them no files directory exists. Undo
 * and discard decide from what exists, not from what the journal says was done (a crash can land between a
 * rename and its journal entry), and are idempotent: a crash during either is followed by the same again.
 */

/** A state the swap can never leave behind: recovery changes nothing and says what it found. */
export class SwapStateError extends PlumError {}

const RECOVER_HINT =
  "decide which database and folder hold production's data, give them the production names (plumctl restore recover --use DATABASE), then run plumctl restore recover";

export async function swapDatabase(server: PgServer, names: RestoreNames): Promise<void> {
  await renameDatabases(server, [
    [names.live!, names.keptDatabase!],
    [names.database!, names.live!],
  ]);
}

export async function keepFiles(names: RestoreNames): Promise<void> {
  await rename(names.filesDir!, names.keptFiles!);
}

export async function placeFiles(names: RestoreNames): Promise<void> {
  await rename(names.restoredFiles!, names.filesDir!);
}

/**
 * Put the files directory from before back. Only the live and the kept folder matter: the kept one exists
 * exactly while it has not been put back. A live one beside it is the restored copy (or an empty folder the
 * agent's start made meanwhile), moved aside into the restore's own folder, which goes with the copy.
 */
export async function filesBack(names: RestoreNames): Promise<string[]> {
  const live = names.filesDir!;
  const kept = names.keptFiles;
  if (!kept || !existsSync(kept)) {
    if (kept && !existsSync(live))
      throw new SwapStateError(`neither the files directory ${live} nor the copy kept of it, ${kept}, exists`, { hint: RECOVER_HINT });
    return [];
  }
  const did: string[] = [];
  if (existsSync(live)) {
    await mkdir(names.filesTarget!, { recursive: true });
    const aside = path.join(names.filesTarget!, `displaced-${Date.now()}`);
    await rename(live, aside);
    did.push(`moved the restored files directory aside (${aside})`);
  }
  await rename(kept, live);
  did.push(`renamed ${kept} back to ${live}`);
  return did;
}

/** Put the database from before back: the swap again, backwards, in one transaction. */
export async function databaseBack(server: PgServer, names: RestoreNames): Promise<string[]> {
  const [live, copy, kept] = [names.live!, names.database!, names.keptDatabase!];
  const [liveExists, copyExists, keptExists] = await Promise.all([databaseExists(server, live), databaseExists(server, copy), databaseExists(server, kept)]);
  if (!keptExists) {
    if (!liveExists) throw new SwapStateError(`neither database "${live}" nor "${kept}" exists`, { hint: RECOVER_HINT });
    return [];
  }
  if (!liveExists) {
    // Only a two-step swap (before the journal) leaves this: the old data is the kept one.
    await renameDatabases(server, [[kept, live]]);
    return [`renamed database ${kept} back to ${live}`];
  }
  if (copyExists)
    throw new SwapStateError(`databases "${live}", "${copy}" and "${kept}" all exist: it cannot be told which holds production's data`, {
      hint: RECOVER_HINT,
    });
  await renameDatabases(server, [
    [live, copy],
    [kept, live],
  ]);
  return [`swapped database ${kept} back in as ${live} (the restored copy is ${copy} again)`];
}

/** The copy a restore made (database, folder), dropped when it exists. */
export async function dropCopy(server: PgServer, names: RestoreNames): Promise<string[]> {
  const did: string[] = [];
  if (names.database && (await databaseExists(server, names.database))) {
    await dropDatabase(server, names.database);
    did.push(`dropped database ${names.database}`);
  }
  if (names.filesTarget && existsSync(names.filesTarget)) {
    await rm(names.filesTarget, { recursive: true, force: true });
    did.push(`removed ${names.filesTarget}`);
  }
  return did;
}

/** The restore stands: what it kept from before goes. Refuses when the restored data is not where the restore put it. */
export async function discardKept(server: PgServer, names: RestoreNames, parts: { db?: boolean; files?: boolean }): Promise<string[]> {
  const did: string[] = [];
  if (parts.db) {
    const [liveExists, copyExists] = await Promise.all([databaseExists(server, names.live!), databaseExists(server, names.database!)]);
    if (!liveExists || copyExists)
      throw new SwapStateError(
        `the restored copy should be database "${names.live}" by now, yet ${liveExists ? `"${names.database}" still exists` : `"${names.live}" does not exist`}`,
        { hint: RECOVER_HINT },
      );
    if (await databaseExists(server, names.keptDatabase!)) {
      await dropDatabase(server, names.keptDatabase!);
      did.push(`dropped database ${names.keptDatabase} (the data from before the restore)`);
    }
  }
  if (parts.files) {
    if (!existsSync(names.filesDir!))
      throw new SwapStateError(`the restored files should be ${names.filesDir} by now, yet it does not exist`, { hint: RECOVER_HINT });
    if (names.keptFiles && existsSync(names.keptFiles)) {
      await rm(names.keptFiles, { recursive: true, force: true });
      did.push(`removed ${names.keptFiles} (the files from before the restore)`);
    }
  }
  if (names.filesTarget && existsSync(names.filesTarget)) {
    await rm(names.filesTarget, { recursive: true, force: true });
    did.push(`removed ${names.filesTarget}`);
  }
  return did;
}
