import type { Writable } from "node:stream";
import { childFailure, startChild } from "../../lib/child-process.ts";
import { pgEnvironment, type PgServer } from "../../lib/db/database.ts";

/**
 * pg_restore's arguments: a custom-format dump read from stdin into `database`, owned by whoever restores it and
 * without the dump's grants (they name roles of the server it came from; product-roles.ts grants afresh).
 */
export function pgRestoreArgs(database: string): string[] {
  return ["--no-owner", "--no-acl", "--dbname", database];
}

const RESTORE_DEADLINE_MS = 6 * 60 * 60_000;

/**
 * A running pg_restore: write the dump to `input` (and end it); `finished` settles when pg_restore exits,
 * rejecting with its stderr tail on a non-zero exit. pg_restore reads its input to the end even after an
 * error, so the producer (restic dump) is never cut off.
 */
export function pgRestoreProcess(server: PgServer, database: string, opts: { timeoutMs?: number } = {}): { input: Writable; finished: Promise<void> } {
  const timeoutMs = opts.timeoutMs ?? RESTORE_DEADLINE_MS;
  const child = startChild(["pg_restore", ...pgRestoreArgs(database)], {
    env: { ...process.env, ...pgEnvironment(server) },
    stdin: "pipe",
    stdout: "ignore",
    timeoutMs,
    missingHint: "install postgresql-client-15 (it ships pg_restore)",
  });
  const finished = child.exit.then((exit) => {
    if (exit.exitCode !== 0) throw childFailure(exit, `pg_restore into "${database}"`, { timeoutMs });
  });
  return { input: child.stdin!, finished };
}
