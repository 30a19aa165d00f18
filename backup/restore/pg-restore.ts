import { spawn } from "node:child_process";
import type { Writable } from "node:stream";
import { ChildProcessError } from "../../lib/errors.ts";
import { pgEnvironment, type PgServer } from "../../lib/db/database.ts";

/** pg_restore's arguments: a custom-format dump read from stdin into `database`, owned by whoever restores it. */
export function pgRestoreArgs(database: string): string[] {
  return ["--no-owner", "--dbname", database];
}

const TAIL_BYTES = 4000;

/**
 * A running pg_restore: write the dump to `input` (and end it); `finished` settles when pg_restore exits,
 * rejecting with its stderr tail on a non-zero exit. pg_restore reads its input to the end even after an
 * error, so the producer (restic dump) is never cut off.
 */
export function pgRestoreProcess(server: PgServer, database: string): { input: Writable; finished: Promise<void>; kill(): void } {
  const args = pgRestoreArgs(database);
  const child = spawn("pg_restore", args, { env: { ...process.env, ...pgEnvironment(server) }, stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-TAIL_BYTES);
  });
  // A write after pg_restore died surfaces as its exit status below, not as an unhandled EPIPE.
  child.stdin.on("error", () => undefined);
  const finished = new Promise<void>((resolve, reject) => {
    child.on("error", (err) =>
      reject(
        new ChildProcessError(`pg_restore could not start: ${err.message}`, {
          command: ["pg_restore", ...args],
          exitCode: null,
          outputTail: "",
          hint: "install postgresql-client-15 (it ships pg_restore)",
        }),
      ),
    );
    child.on("close", (code) => {
      if (code === 0) resolve();
      else
        reject(
          new ChildProcessError(`pg_restore into "${database}" failed (exit ${code})`, {
            command: ["pg_restore", ...args],
            exitCode: code,
            outputTail: stderr,
          }),
        );
    });
  });
  return { input: child.stdin, finished, kill: () => child.kill("SIGTERM") };
}
