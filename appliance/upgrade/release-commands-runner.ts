import { outputTail } from "../../lib/child-process.ts";
import { ChildProcessError } from "../../lib/errors.ts";
import type { ReleaseRef, RuntimeDriver } from "../runtimes/runtime.ts";

/** One run of a release's own `plumctl`: its arguments (no secrets) and the environment that carries them. */
export interface ReleaseInvocation {
  args: string[];
  env: Record<string, string>;
  timeoutMs: number;
}

/** `plumctl migrate [--to NAME]` against a database given by URL (env, never argv). */
export function migrateInvocation(databaseUrl: string, opts: { to?: string; timeoutMs: number }): ReleaseInvocation {
  return {
    args: ["migrate", ...(opts.to ? ["--to", opts.to] : [])],
    env: { PLUM_MIGRATE_DATABASE_URL: databaseUrl },
    timeoutMs: opts.timeoutMs,
  };
}

/** `plumctl validate` against an instance and its database. */
export function validateInvocation(instanceUrl: string, databaseUrl: string, suites: string[], timeoutMs: number): ReleaseInvocation {
  return {
    args: ["validate", "--url", instanceUrl, ...suites.flatMap((s) => ["--suite", s])],
    env: { PLUM_VALIDATE_DATABASE_URL: databaseUrl },
    timeoutMs,
  };
}

/** Run a release's migrations and return what its JSON line says; a failure throws with the tail of its output. */
export async function runReleaseMigrate(
  runtime: RuntimeDriver,
  release: ReleaseRef,
  databaseUrl: string,
  opts: { to?: string; timeoutMs: number },
): Promise<{ ran: string[]; schemaVersion: string; seconds: number }> {
  const inv = migrateInvocation(databaseUrl, opts);
  const result = await runtime.exec(release, inv.args, inv);
  if (result.code !== 0) {
    throw new ChildProcessError(`${release.version}'s migrations (${opts.to ? `down to ${opts.to}` : "up"}) failed`, {
      command: ["plumctl", ...inv.args],
      exitCode: result.code,
      outputTail: outputTail(result.stderr + result.stdout),
    });
  }
  const line = result.stdout.trim().split("\n").pop() ?? "";
  const parsed = JSON.parse(line) as { ran: string[]; schemaVersion: string; seconds: number };
  return { ran: parsed.ran, schemaVersion: parsed.schemaVersion, seconds: result.seconds };
}

export interface SuiteOutcome {
  passed: boolean;
  reports: Array<{ suite: string; passed: boolean; checks: Array<{ name: string; passed: boolean; detail?: string }> }>;
  failures: string[];
  seconds: number;
}

/** Run a release's validation suites; the JSON reports say what passed; exit 1 means a check failed. */
export async function runReleaseValidate(
  runtime: RuntimeDriver,
  release: ReleaseRef,
  instanceUrl: string,
  databaseUrl: string,
  suites: string[],
  timeoutMs: number,
): Promise<SuiteOutcome> {
  const inv = validateInvocation(instanceUrl, databaseUrl, suites, timeoutMs);
  const result = await runtime.exec(release, inv.args, inv);
  let reports: SuiteOutcome["reports"];
  try {
    reports = JSON.parse(result.stdout);
  } catch {
    throw new ChildProcessError(`${release.version}'s \`plumctl validate\` printed no report`, {
      command: ["plumctl", ...inv.args],
      exitCode: result.code,
      outputTail: outputTail(result.stderr + result.stdout),
    });
  }
  const failures = reports.flatMap((r) => r.checks.filter((c) => !c.passed).map((c) => `${r.suite}: ${c.name}${c.detail ? ` (${c.detail})` : ""}`));
  return { passed: result.code === 0 && failures.length === 0, reports, failures, seconds: result.seconds };
}
