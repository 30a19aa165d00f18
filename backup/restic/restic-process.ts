import type { Readable, Writable } from "node:stream";
import { startChild, type ChildExit } from "../../lib/child-process.ts";
import type { Repository } from "../backup-types.ts";
import { displayLocation, ResticError } from "./restic-errors.ts";

const RESTIC_MISSING = "install restic (Debian: apt-get install restic) or set the path to its binary";

export interface ResticRun {
  binary: string;
  repo: Repository;
  /** The source of `copy` / `init --from-repo`: its password goes in RESTIC_FROM_PASSWORD_FILE. */
  fromRepo?: Repository;
  /** The verb and its arguments (`-r` is added). */
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

/** The environment of a restic child: ours without any RESTIC_ password or repository, plus the password files. */
export function resticEnvironment(repo: Repository, fromRepo?: Repository): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !INHERITED_RESTIC.test(name)));
  env.RESTIC_PASSWORD_FILE = repo.passwordFile;
  if (fromRepo) env.RESTIC_FROM_PASSWORD_FILE = fromRepo.passwordFile;
  return env;
}

/** The command as shown in errors and logs: no secret is ever in argv, and URL credentials are masked. */
export function displayCommand(run: Pick<ResticRun, "repo" | "args">): string[] {
  return ["restic", "-r", displayLocation(run.repo.location), ...run.args.map(displayLocation)];
}

/**
 * Run restic once and read all it prints (a restic whose stdout is closed early dies and leaves a stale
 * lock). Resolves with how it ended; deciding whether that is an error is the caller's job (restic-errors.ts).
 */
export async function runResticProcess(run: ResticRun): Promise<ResticExit> {
  const command = displayCommand(run);
  const running = startChild([run.binary, "-r", run.repo.location, ...run.args], {
    env: resticEnvironment(run.repo, run.fromRepo),
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
