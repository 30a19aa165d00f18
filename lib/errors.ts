/** An error an admin can act on: what went wrong, and what to do about it. */
export class PlumError extends Error {
  readonly hint?: string;
  readonly detail?: string;
  constructor(message: string, opts: { hint?: string; detail?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.hint = opts.hint;
    this.detail = opts.detail;
  }
}

/**
 * A child process failed (lib/child-process.ts makes these). `command` is the command as shown: its
 * arguments never hold a secret (those travel in the environment or in files), and a credential a URL
 * argument may carry is masked by the caller. `outputTail` is the end of what it printed.
 */
export class ChildProcessError extends PlumError {
  readonly command: string[];
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Whether it was killed at its deadline. */
  readonly timedOut: boolean;
  readonly outputTail: string;
  constructor(
    message: string,
    opts: {
      command: string[];
      exitCode: number | null;
      signal?: NodeJS.Signals | null;
      timedOut?: boolean;
      outputTail: string;
      hint?: string;
      cause?: unknown;
    },
  ) {
    super(message, { hint: opts.hint, detail: opts.outputTail, cause: opts.cause });
    this.command = opts.command;
    this.exitCode = opts.exitCode;
    this.signal = opts.signal ?? null;
    this.timedOut = opts.timedOut ?? false;
    this.outputTail = opts.outputTail;
  }
}

/** How a child ended, for a message: "exited with 2", "was killed by SIGKILL", "was killed at its deadline of 10 s". */
export function childEnding(e: { exitCode: number | null; signal: NodeJS.Signals | null; timedOut: boolean }, timeoutMs?: number): string {
  if (e.timedOut) return `was killed at its deadline${timeoutMs ? ` of ${Math.round(timeoutMs / 1000)} s` : ""}`;
  if (e.exitCode !== null) return `exited with ${e.exitCode}`;
  return e.signal ? `was killed by ${e.signal}` : "did not start";
}

export class TimeoutError extends PlumError {}

/** Format an error for a terminal: message, hint, detail. */
export function describeError(err: unknown): string {
  if (err instanceof PlumError) {
    const lines = [`error: ${err.message}`];
    if (err instanceof ChildProcessError) lines.push(`  command: ${err.command.join(" ")} (${childEnding(err)})`);
    if (err.detail)
      lines.push(
        ...err.detail
          .trimEnd()
          .split("\n")
          .slice(-15)
          .map((l) => `  | ${l}`),
      );
    if (err.hint) lines.push(`  hint: ${err.hint}`);
    return lines.join("\n");
  }
  return `error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
}
