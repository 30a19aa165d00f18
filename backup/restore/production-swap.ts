import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import type { PgServer } from "../../lib/db/database.ts";
import { databaseExists, dropDatabase, renameDatabase } from "./whole-databases.ts";

/** A verified copy and the live thing it replaces; the live one is kept under `kept` until the restore succeeded. */
export interface Exchange {
  live: string;
  restored: string;
  kept: string;
}

export interface SwapPlan {
  database?: Exchange;
  files?: Exchange;
}

interface Step {
  title: string;
  run(): Promise<void>;
  undo(): Promise<void>;
}

/** The renames that put restored copies in place, in order; undoing is the same list run backwards. */
export function swapSteps(server: PgServer, plan: SwapPlan): Step[] {
  const steps: Step[] = [];
  const { database: db, files } = plan;
  if (db) {
    steps.push(
      {
        title: `keep database ${db.live} as ${db.kept}`,
        run: () => renameDatabase(server, db.live, db.kept),
        undo: () => renameDatabase(server, db.kept, db.live),
      },
      {
        title: `rename database ${db.restored} to ${db.live}`,
        run: () => renameDatabase(server, db.restored, db.live),
        undo: () => renameDatabase(server, db.live, db.restored),
      },
    );
  }
  if (files) {
    // A files directory that is gone altogether has nothing to keep.
    if (existsSync(files.live))
      steps.push({ title: `keep ${files.live} as ${files.kept}`, run: () => rename(files.live, files.kept), undo: () => rename(files.kept, files.live) });
    steps.push({
      title: `move ${files.restored} to ${files.live}`,
      run: () => rename(files.restored, files.live),
      undo: () => rename(files.live, files.restored),
    });
  }
  return steps;
}

/**
 * The swap as it happens: `run` does the steps in order and remembers each one done; `undo` reverses exactly
 * those, newest first (also after `run` failed half way).
 */
export function productionSwap(server: PgServer, plan: SwapPlan, say: (line: string) => void): { run(): Promise<void>; undo(): Promise<void> } {
  const done: Step[] = [];
  return {
    async run() {
      for (const step of swapSteps(server, plan)) {
        say(step.title);
        await step.run();
        done.push(step);
      }
    },
    async undo() {
      while (done.length > 0) {
        const step = done[done.length - 1];
        say(`undo: ${step.title}`);
        await step.undo();
        done.pop();
      }
    },
  };
}

/** After success: drop what was kept. */
export async function discardKept(server: PgServer, plan: SwapPlan): Promise<void> {
  if (plan.database && (await databaseExists(server, plan.database.kept))) await dropDatabase(server, plan.database.kept);
  if (plan.files) await rm(plan.files.kept, { recursive: true, force: true });
}
