import { spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type { Repository } from "../backup-types.ts";
import { displayLocation, ResticError } from "./restic-errors.ts";

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

export interface ResticExit {
  command: string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** When stdout went to a sink that failed: its error (restic's output was still read to the end). */
  sinkError?: Error;
}

const STDERR_KEPT = 64 * 1024;

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
 * Spawn restic once and read all it prints (a restic whose stdout is closed early dies and leaves a stale
 * lock). Resolves with how it ended; deciding whether that is an error is the caller's job.
 */
export function runResticProcess(run: ResticRun): Promise<ResticExit> {
  const command = displayCommand(run);
  return new Promise((resolve, reject) => {
    const child = spawn(run.binary, ["-r", run.repo.location, ...run.args], {
      env: resticEnvironment(run.repo, run.fromRepo),
      stdio: [run.stdin ? "pipe" : "ignore", "pipe", "pipe"],
    });
    const out = child.stdout!;
    const err = child.stderr!;
    let stdout = "";
    let stderr = "";
    let partialLine = "";
    let timedOut = false;
    let sinkError: Error | undefined;
    let lineError: unknown;
    let killTimer: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => {
      timedOut = true;
      child.kill("SIGINT");
      killTimer = setTimeout(() => child.kill("SIGKILL"), run.killGraceMs ?? 5000);
    }, run.timeoutMs);

    // A line the caller cannot take must not stop the reading: restic is read to the end, then that error is thrown.
    const deliver = (line: string) => {
      try {
        run.onLine?.(line);
      } catch (err) {
        lineError ??= err;
      }
    };

    child.on("error", (err) => {
      clearTimeout(deadline);
      reject(
        new ResticError(`cannot run restic (${run.binary}): ${err.message}`, {
          command,
          exitCode: null,
          stderrTail: "",
          hint: "install restic (Debian: apt-get install restic) or set the path to its binary",
        }),
      );
    });

    if (run.stdin && child.stdin) {
      // restic may exit before the input ends (bad password, full disk): that EPIPE is its error, not ours.
      child.stdin.on("error", () => undefined);
      run.stdin.pipe(child.stdin);
    }

    if (run.sink) {
      const sink = run.sink;
      sink.on("error", (e) => {
        sinkError ??= e;
        out.unpipe(sink);
        out.resume();
      });
      out.pipe(sink);
    } else {
      out.setEncoding("utf8");
      out.on("data", (chunk: string) => {
        if (!run.onLine) {
          stdout += chunk;
          return;
        }
        const lines = (partialLine + chunk).split("\n");
        partialLine = lines.pop() ?? "";
        for (const line of lines) deliver(line);
      });
    }
    err.setEncoding("utf8");
    err.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEPT);
    });

    child.on("close", async (exitCode, signal) => {
      clearTimeout(deadline);
      clearTimeout(killTimer);
      if (partialLine !== "") deliver(partialLine);
      if (run.stdin && !run.stdin.readableEnded) {
        run.stdin.unpipe();
        run.stdin.destroy();
      }
      if (timedOut || signal) for (const repo of [run.repo, run.fromRepo]) if (repo) mayHoldStaleLock.add(repo.location);
      if (run.sink && !sinkError) await finished(run.sink).catch((err: Error) => (sinkError = err));
      if (lineError) return reject(lineError);
      resolve({ command, exitCode, signal, timedOut, stdout, stderr, sinkError });
    });
  });
}
