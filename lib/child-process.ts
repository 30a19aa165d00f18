import { spawn } from "node:child_process";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { childEnding, ChildProcessError, PlumError } from "./errors.ts";

/** How much of a child's output an error carries (the end of stderr, else of stdout). */
export const OUTPUT_TAIL_BYTES = 4096;
/** How much of stderr a caller gets to read (restic's warnings, check's verdict): the last 64 KiB. */
const STDERR_KEPT_BYTES = 64 * 1024;
/** Collected stdout beyond this is refused rather than cut: a parser must never read half a listing. */
const STDOUT_COLLECT_LIMIT = 64 * 1024 * 1024;
const DEFAULT_KILL_GRACE_MS = 5000;

/** What the child reads: nothing, a pipe the caller writes (`RunningChild.stdin`), a stream, or bytes. */
export type StdinSource = "ignore" | "pipe" | Readable | Buffer | string;
/**
 * Where stdout goes: kept and returned (`collect`), a pipe the caller reads (`RunningChild.stdout`),
 * a stream byte for byte, one callback per line, or nowhere.
 */
export type StdoutSink = "collect" | "pipe" | "ignore" | Writable | ((line: string) => void);

export interface ChildOptions {
  /** Every wait has a deadline: at it the child gets `stopSignal`, then SIGKILL after `killGraceMs`. */
  timeoutMs: number;
  /** The whole environment of the child; default ours. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this user and group (as root: the embedded PostgreSQL runs as "postgres"). */
  uid?: number;
  gid?: number;
  stdin?: StdinSource;
  stdout?: StdoutSink;
  /** SIGTERM unless the program cleans up on another one (restic removes its lock on SIGINT only). */
  stopSignal?: NodeJS.Signals;
  killGraceMs?: number;
  /** Stops the child like the deadline does (`aborted` in the exit). */
  abort?: AbortSignal;
  /**
   * The command as errors and logs show it. Default: argv, which by the house rule never holds a secret;
   * a caller whose arguments can hold credentials (a repository URL with a password) passes a masked copy.
   */
  shown?: string[];
  /** Said when the program cannot be started, e.g. which package ships it. */
  missingHint?: string;
}

/** How a child ended, and what it printed. */
export interface ChildExit {
  command: string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  /** All of stdout when it was collected; empty otherwise. */
  stdout: string;
  /** The last 64 KiB of stderr. */
  stderr: string;
  /** What the stdout sink or the line reader threw; the child's output was still read to the end. */
  outputError?: Error;
  ms: number;
}

export interface RunningChild {
  pid?: number;
  /** Given when stdin is "pipe"; a write after the child died is not an error here (its exit says why). */
  stdin: Writable | null;
  /** Given when stdout is "pipe": the caller reads it to the end (or hands it to another child). */
  stdout: Readable | null;
  /**
   * Settles once the child is gone and its output read (and a stdout sink finished). Resolves however it
   * ended; rejects only when the program could not be started.
   */
  exit: Promise<ChildExit>;
}

/** The last OUTPUT_TAIL_BYTES of a text, for an error. */
export function outputTail(text: string): string {
  return text.length > OUTPUT_TAIL_BYTES ? text.slice(-OUTPUT_TAIL_BYTES) : text;
}

/** The error for a child that did not end well: "`what` exited with 2: its last line", with the tail of its output. */
export function childFailure(exit: ChildExit, what: string, opts: { hint?: string; timeoutMs?: number } = {}): ChildProcessError {
  const tail = outputTail(exit.stderr.trim() ? exit.stderr : exit.stdout);
  const lastLine = tail.trim().split("\n").pop() ?? "";
  return new ChildProcessError(`${what} ${childEnding(exit, opts.timeoutMs)}${lastLine ? `: ${lastLine}` : ""}`, {
    command: exit.command,
    exitCode: exit.exitCode,
    signal: exit.signal,
    timedOut: exit.timedOut,
    outputTail: tail,
    hint: opts.hint,
  });
}

/** Run a program to its end; anything but exit 0 (or one of `okCodes`) throws a ChildProcessError. */
export async function runChild(argv: string[], opts: ChildOptions & { what?: string; hint?: string; okCodes?: number[] }): Promise<ChildExit> {
  const exit = await startChild(argv, opts).exit;
  const ok = !exit.timedOut && !exit.aborted && exit.exitCode !== null && (exit.exitCode === 0 || (opts.okCodes ?? []).includes(exit.exitCode));
  if (!ok) throw childFailure(exit, opts.what ?? path.basename(argv[0]), { hint: opts.hint, timeoutMs: opts.timeoutMs });
  if (exit.outputError) throw exit.outputError;
  return exit;
}

/** Spawn a program with an argument array (never a shell) and follow it to its end. */
export function startChild(argv: string[], opts: ChildOptions): RunningChild {
  const command = opts.shown ?? argv;
  const stdinSource = opts.stdin ?? "ignore";
  const sink = opts.stdout ?? "collect";
  const started = Date.now();
  const child = spawn(argv[0], argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    uid: opts.uid,
    gid: opts.gid,
    stdio: [stdinSource === "ignore" ? "ignore" : "pipe", sink === "ignore" ? "ignore" : "pipe", "pipe"],
  });
  // A child that exits before reading all of its input: that EPIPE is its story, told by its exit status.
  child.stdin?.on("error", () => undefined);

  let stdout = "";
  let stderr = "";
  let timedOut = false;
  let aborted = false;
  let outputError: Error | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const keepFirst = (err: unknown) => (outputError ??= err instanceof Error ? err : new Error(String(err)));

  // Destroying our ends of the pipes lets `close` come even when a grandchild still holds them open.
  const forceClose = () => {
    for (const s of [child.stdin, child.stdout, child.stderr]) s?.destroy();
    if (sink !== null && typeof sink === "object") sink.destroy(new PlumError(`${path.basename(argv[0])} was stopped before its output was written`));
  };
  const stop = () => {
    if (child.exitCode !== null || child.signalCode !== null) return forceClose();
    child.kill(opts.stopSignal ?? "SIGTERM");
    killTimer ??= setTimeout(() => {
      child.kill("SIGKILL");
      killTimer = setTimeout(forceClose, opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    }, opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
  };
  const deadline = setTimeout(() => {
    timedOut = true;
    stop();
  }, opts.timeoutMs);
  const onAbort = () => {
    aborted = true;
    stop();
  };
  if (opts.abort?.aborted) queueMicrotask(onAbort);
  else opts.abort?.addEventListener("abort", onAbort, { once: true });

  if (child.stdin && stdinSource !== "pipe" && stdinSource !== "ignore") {
    if (typeof stdinSource === "string" || Buffer.isBuffer(stdinSource)) child.stdin.end(stdinSource);
    else stdinSource.pipe(child.stdin);
  }

  const out = child.stdout;
  if (out && typeof sink === "function") {
    let partial = "";
    const deliver = (line: string) => {
      try {
        sink(line);
      } catch (err) {
        keepFirst(err); // a line the caller cannot take must not stop the reading
      }
    };
    out.setEncoding("utf8");
    out.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) deliver(line);
    });
    out.on("end", () => partial !== "" && deliver(partial));
  } else if (out && sink === "collect") {
    out.setEncoding("utf8");
    out.on("data", (chunk: string) => {
      if (outputError) return;
      if (stdout.length + chunk.length > STDOUT_COLLECT_LIMIT) {
        keepFirst(new PlumError(`${path.basename(argv[0])} printed more than ${STDOUT_COLLECT_LIMIT / 1024 / 1024} MiB`));
        stdout = "";
      } else stdout += chunk;
    });
  } else if (out && typeof sink === "object" && sink !== null) {
    sink.on("error", (err) => {
      keepFirst(err);
      out.unpipe(sink);
      out.resume(); // read on to the end: a program whose stdout closes early may die half-way (restic leaves its lock)
    });
    out.pipe(sink);
  }
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT_BYTES);
  });

  const exit = new Promise<ChildExit>((resolve, reject) => {
    const settle = () => {
      clearTimeout(deadline);
      clearTimeout(killTimer);
      opts.abort?.removeEventListener("abort", onAbort);
      // The input's producer must learn that nobody reads any more, rather than wait forever.
      if (typeof stdinSource === "object" && !Buffer.isBuffer(stdinSource) && !stdinSource.readableEnded) {
        stdinSource.unpipe();
        stdinSource.destroy();
      }
    };
    child.on("error", (err) => {
      if (child.pid !== undefined) return; // a failed kill of a running child: its close still comes
      settle();
      reject(new ChildProcessError(`cannot run ${argv[0]}: ${err.message}`, { command, exitCode: null, outputTail: "", hint: opts.missingHint, cause: err }));
    });
    child.once("close", async (exitCode, signal) => {
      if (child.pid === undefined) return;
      if (typeof sink === "object" && sink !== null && !outputError) await finished(sink).catch(keepFirst);
      settle();
      resolve({ command, exitCode, signal, timedOut, aborted, stdout, stderr, outputError, ms: Date.now() - started });
    });
  });
  return { pid: child.pid, stdin: stdinSource === "pipe" ? child.stdin : null, stdout: sink === "pipe" ? child.stdout : null, exit };
}
