import { spawn } from "node:child_process";
import { ChildProcessError, PlumError } from "../../lib/errors.ts";
import type { ReleaseRef } from "../runtimes/runtime.ts";

/** One run of a release's own `plumctl`: argv (no secrets) and the environment that carries them. */
export interface ReleaseInvocation {
  argv: string[];
  env: Record<string, string>;
  timeoutMs: number;
}

const INHERITED = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "NODE_EXTRA_CA_CERTS"];

/** `plumctl migrate [--to NAME]` of a release against a database given by URL (env, never argv). */
export function migrateInvocation(release: ReleaseRef, databaseUrl: string, opts: { to?: string; timeoutMs: number }): ReleaseInvocation {
  return {
    argv: [...release.command, "migrate", ...(opts.to ? ["--to", opts.to] : [])],
    env: { PLUM_MIGRATE_DATABASE_URL: databaseUrl },
    timeoutMs: opts.timeoutMs,
  };
}

/** `plumctl validate` of a release against an instance and its database. */
export function validateInvocation(release: ReleaseRef, instanceUrl: string, databaseUrl: string, suites: string[], timeoutMs: number): ReleaseInvocation {
  return {
    argv: [...release.command, "validate", "--url", instanceUrl, ...suites.flatMap((s) => ["--suite", s])],
    env: { PLUM_VALIDATE_DATABASE_URL: databaseUrl },
    timeoutMs,
  };
}

export interface InvocationResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Run an invocation in the release's folder, with a deadline (killed when it passes). Never rejects on exit codes. */
export function runInvocation(release: ReleaseRef, inv: ReleaseInvocation): Promise<InvocationResult> {
  const env: Record<string, string> = {};
  for (const key of INHERITED) if (process.env[key]) env[key] = process.env[key]!;
  Object.assign(env, inv.env);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = inv.argv;
    const child = spawn(cmd, args, { cwd: release.dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, inv.timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new PlumError(`could not run ${release.version}'s plumctl: ${err.message}`, { hint: `is the release folder ${release.dir} complete?` }));
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new ChildProcessError(`${release.version}'s \`plumctl ${args[1]}\` did not finish within ${Math.round(inv.timeoutMs / 1000)} s`, { command: inv.argv, exitCode: code, outputTail: stderr.slice(-2000) }));
        return;
      }
      resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** Run a release's migrations and return what its JSON line says; a failure throws with the tail of its output. */
export async function runReleaseMigrate(release: ReleaseRef, databaseUrl: string, opts: { to?: string; timeoutMs: number }): Promise<{ ran: string[]; schemaVersion: string; seconds: number }> {
  const inv = migrateInvocation(release, databaseUrl, opts);
  const result = await runInvocation(release, inv);
  if (result.code !== 0) {
    throw new ChildProcessError(`${release.version}'s migrations (${opts.to ? `down to ${opts.to}` : "up"}) failed`, { command: inv.argv, exitCode: result.code, outputTail: (result.stderr + result.stdout).slice(-3000) });
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
export async function runReleaseValidate(release: ReleaseRef, instanceUrl: string, databaseUrl: string, suites: string[], timeoutMs: number): Promise<SuiteOutcome> {
  const inv = validateInvocation(release, instanceUrl, databaseUrl, suites, timeoutMs);
  const result = await runInvocation(release, inv);
  let reports: SuiteOutcome["reports"];
  try {
    reports = JSON.parse(result.stdout);
  } catch {
    throw new ChildProcessError(`${release.version}'s \`plumctl validate\` printed no report`, { command: inv.argv, exitCode: result.code, outputTail: (result.stderr + result.stdout).slice(-3000) });
  }
  const failures = reports.flatMap((r) => r.checks.filter((c) => !c.passed).map((c) => `${r.suite}: ${c.name}${c.detail ? ` (${c.detail})` : ""}`));
  return { passed: result.code === 0 && failures.length === 0, reports, failures, seconds: result.seconds };
}
