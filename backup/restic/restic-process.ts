import type { Readable, Writable } from "node:stream";
import { startChild, type ChildExit } from "../../lib/child-process.ts";
import type { Repository } from "../backup-types.ts";
import { displayLocation, ResticError } from "./restic-errors.ts";

const RESTIC_MISSING = "install restic (Debian: apt-get install restic) or set the path to its binary";

export interface ResticRun {
  binary: string;
  repo: Repository;
  /** The source of `copy` / `init --copy-chunker-params`: RESTIC_FROM_REPOSITORY and RESTIC_FROM_PASSWORD_FILE. */
  fromRepo?: Repository;
  /** The verb and its arguments; the repositories travel in the environment. */
  args: string[];
  stdin?: Readable;
  /** Where stdout goes byte for byte (`dump`); otherwise it is read as lines. */
  sink?: Writable;
  /** Each stdout line as it comes; without it the whole stdout is kept and returned. */
  onLine?: (line: string) => void;
  timeoutMs: number;
  /** After the deadline restic gets SIGINT (it then removes its own lock), then SIGKILL after this. */
  killGraceMs?: number;
}

/** How a restic run ended: the runner's exit, with the command as shown (repository credentials masked). */
export type ResticExit = ChildExit;

/** Repository locations where a restic we ran was killed: a stale lock may be left there. */
const mayHoldStaleLock = new Set<string>();

/** Whether a restic run on this location was killed since the last ask (the caller unlocks now). */
export function takeStaleLockMark(location: string): boolean {
  return mayHoldStaleLock.delete(location);
}

// Variables that could point restic at another repository or password than the ones we pass.
const INHERITED_RESTIC = /^RESTIC_(PASSWORD|REPOSITORY|FROM_|KEY_HINT)/;

/** Where restic reaches a repository: its append-only endpoint when it has one (started on demand), else its location. */
export async function reachableLocation(repo: Repository): Promise<string> {
  return repo.appendOnly ? repo.appendOnly.url() : repo.location;
}

/**
 * The environment of a restic child: ours without any RESTIC_ password or repository, plus the repositories
 * (RESTIC_REPOSITORY, RESTIC_FROM_REPOSITORY: a URL may carry credentials, and argv is world-readable in
 * /proc) and the password files. `reached`: where restic reaches them, when not at their configured locations.
 */
export function resticEnvironment(
  repo: Repository,
  fromRepo?: Repository,
  reached: { location: string; fromLocation?: string } = { location: repo.location, fromLocation: fromRepo?.location },
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !INHERITED_RESTIC.test(name)));
  env.RESTIC_REPOSITORY = reached.location;
  env.RESTIC_PASSWORD_FILE = repo.passwordFile;
  if (fromRepo) {
    env.RESTIC_FROM_REPOSITORY = reached.fromLocation ?? fromRepo.location;
    env.RESTIC_FROM_PASSWORD_FILE = fromRepo.passwordFile;
  }
  return env;
}

/**
 * The command as errors and logs show it, written as the equivalent command line (`-r`, `--from-repo`) with
 * URL credentials masked. The real argv is the verb and its arguments only: the repositories are in the
 * environment.
 */
export function displayCommand(run: Pick<ResticRun, "repo" | "args" | "fromRepo">): string[] {
  const [verb, ...rest] = run.args;
  const from = run.fromRepo ? ["--from-repo", displayLocation(run.fromRepo.location)] : [];
  return ["restic", "-r", displayLocation(run.repo.location), verb, ...from, ...rest.map(displayLocation)];
}

/**
 * Run restic once and read all it prints (a restic whose stdout is closed early dies and leaves a stale
 * lock). Resolves with how it ended; deciding whether that is an error is the caller's job (restic-errors.ts).
 */
export async function runResticProcess(run: ResticRun): Promise<ResticExit> {
  const command = displayCommand(run);
  const reached = { location: await reachableLocation(run.repo), fromLocation: run.fromRepo && (await reachableLocation(run.fromRepo)) };
  const running = startChild([run.binary, ...run.args], {
    env: resticEnvironment(run.repo, run.fromRepo, reached),
    shown: command,
    stdin: run.stdin ?? "ignore",
    stdout: run.sink ?? run.onLine ?? "collect",
    timeoutMs: run.timeoutMs,
    // restic removes its own lock on SIGINT; SIGTERM (and SIGKILL) leave it behind.
    stopSignal: "SIGINT",
    killGraceMs: run.killGraceMs,
  });
  const exit = await running.exit.catch((err: Error) => {
    throw new ResticError(`cannot run restic (${run.binary}): ${err.message}`, { command, exitCode: null, stderrTail: "", hint: RESTIC_MISSING });
  });
  if (exit.timedOut || exit.signal) for (const repo of [run.repo, run.fromRepo]) if (repo) mayHoldStaleLock.add(repo.location);
  return exit;
}
