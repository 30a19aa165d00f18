import { mkdirSync, mkdtempSync } from "node:fs";
import path from "node:path";

/** The folder of this test run (made by global-setup.ts, removed with its cluster at the end). */
export const RUN_DIR_ENV = "PLUM_TEST_RUN_DIR";

export function runDir(): string {
  const dir = process.env[RUN_DIR_ENV];
  if (!dir) throw new Error(`${RUN_DIR_ENV} is not set: run the tests with mocha (global-setup.ts makes the run's folder)`);
  return dir;
}

/**
 * A temp folder inside the run's folder: it goes with the run, also when a --parallel worker is ended
 * without an exit handler running.
 */
export function runTempDir(prefix: string): string {
  const parent = path.join(runDir(), "tmp");
  mkdirSync(parent, { recursive: true });
  return mkdtempSync(path.join(parent, prefix));
}

/** A folder shared by every worker of the run (a cache), made on first use. */
export function runSharedDir(name: string): string {
  const dir = path.join(runDir(), name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
