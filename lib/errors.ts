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

/** A child process failed: carries the command (never its secrets) and the tail of its output. */
export class ChildProcessError extends PlumError {
  readonly command: string[];
  readonly exitCode: number | null;
  readonly outputTail: string;
  constructor(message: string, opts: { command: string[]; exitCode: number | null; outputTail: string; hint?: string }) {
    super(message, { hint: opts.hint, detail: opts.outputTail });
    this.command = opts.command;
    this.exitCode = opts.exitCode;
    this.outputTail = opts.outputTail;
  }
}

export class TimeoutError extends PlumError {}

/** Format an error for a terminal: message, hint, detail. */
export function describeError(err: unknown): string {
  if (err instanceof PlumError) {
    const lines = [`error: ${err.message}`];
    if (err instanceof ChildProcessError) lines.push(`  command: ${err.command.join(" ")} (exit ${err.exitCode})`);
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
