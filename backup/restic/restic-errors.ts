import { ChildProcessError, PlumError } from "../../lib/errors.ts";
import type { BackupSummary } from "./restic-output.ts";

interface ResticErrorOptions {
  command: string[];
  exitCode: number | null;
  signal?: NodeJS.Signals | null;
  timedOut?: boolean;
  stderrTail: string;
  hint?: string;
}

/**
 * A restic command failed. Carries the command as run (argv holds no secret: the password travels in
 * RESTIC_PASSWORD_FILE, and credentials in a repository URL are masked), the exit code and the stderr tail.
 */
export class ResticError extends ChildProcessError {
  constructor(message: string, opts: ResticErrorOptions) {
    super(message, { ...opts, outputTail: opts.stderrTail });
  }
  get stderrTail(): string {
    return this.outputTail;
  }
}

export class RepositoryMissingError extends ResticError {}

/** `forget` or `prune` asked of a repository's append-only endpoint: refused before restic runs. */
export class AppendOnlyRefusedError extends PlumError {}
export class WrongPasswordError extends ResticError {}
export class RepositoryLockedError extends ResticError {}
export class EmptySnapshotError extends ResticError {}

/** The command ran past its deadline and was killed; the next call on that repository first clears stale locks. */
export class ResticTimeoutError extends ResticError {}

/**
 * Some source files could not be read (exit 3; on 0.14 also a missing source path, which it only warns
 * about). A snapshot was still saved: `summary` names it so the caller can forget it.
 */
export class PartialBackupError extends ResticError {
  readonly summary?: BackupSummary;
  constructor(message: string, opts: ResticErrorOptions & { summary?: BackupSummary }) {
    super(message, { ...opts, hint: "check that every path to back up exists and is readable by the agent's user" });
    this.summary = opts.summary;
  }
}

type ErrorClass = new (message: string, opts: ResticErrorOptions) => ResticError;

// Exit codes 10/11/12 exist from restic 0.17; 0.14 says everything fatal with 1 and a known stderr line.
const BY_EXIT_CODE: Record<number, ErrorClass> = { 10: RepositoryMissingError, 11: RepositoryLockedError, 12: WrongPasswordError };
const BY_STDERR: Array<[RegExp, ErrorClass]> = [
  [/wrong password or no key found/i, WrongPasswordError],
  [/repository is already locked|unable to create lock in backend/i, RepositoryLockedError],
  [/snapshot is empty/i, EmptySnapshotError],
  [/repository does not exist|unable to open config file|Is there a repository at the following location/i, RepositoryMissingError],
];

const HINTS = new Map<ErrorClass, string>([
  [
    RepositoryMissingError,
    "check the repository location (backup.primary / backup.secondary) and that its storage is mounted; a new repository is initialised by the first backup",
  ],
  [
    WrongPasswordError,
    "the password file does not open this repository: put back the restic password of the recovery kit in PLUM_HOME/secrets/restic-password",
  ],
  [
    RepositoryLockedError,
    "another restic process holds the repository's lock; when none is running, `restic unlock` (or the next backup run) removes stale locks",
  ],
  [EmptySnapshotError, "restic was given no data: the producer (pg_dump) wrote nothing, see its error"],
]);

/** restic 0.17+ with --json reports a fatal error as {"message_type":"exit_error","message":…}: its message. */
function readableLine(line: string): string {
  try {
    const message = (JSON.parse(line) as { message?: unknown }).message;
    return typeof message === "string" ? message : line;
  } catch {
    return line;
  }
}

/** The typed error for a failed restic run: by exit code first (0.17+), then by what 0.14 prints. */
export function resticErrorFor(command: string[], exitCode: number | null, stderrTail: string, signal?: NodeJS.Signals | null): ResticError {
  const lastLine = readableLine(stderrTail.trim().split("\n").filter(Boolean).pop() ?? "no error output");
  const verb = command.find((arg, i) => i > 0 && !arg.startsWith("-") && command[i - 1] !== "-r") ?? "?";
  const repo = command[command.indexOf("-r") + 1];
  const message = `restic ${verb} on ${repo} failed (${exitCode === null ? `killed by ${signal ?? "a signal"}` : `exit ${exitCode}`}): ${lastLine.replace(/^Fatal:\s*/, "")}`;
  const byCode = exitCode === null ? undefined : BY_EXIT_CODE[exitCode];
  const Class = byCode ?? BY_STDERR.find(([pattern]) => pattern.test(stderrTail))?.[1] ?? ResticError;
  return new Class(message, { command, exitCode, signal, stderrTail, hint: HINTS.get(Class) });
}

/** A repository location fit for messages and logs: credentials in a URL are masked. */
export function displayLocation(location: string): string {
  return location.replace(/(\/\/)([^/@\s]+)@/, (_m, slashes: string, userinfo: string) => `${slashes}${userinfo.split(":")[0]}:***@`);
}
