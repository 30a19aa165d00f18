import type { Readable, Writable } from "node:stream";
import { outputTail } from "../../lib/child-process.ts";
import type { Logger } from "../../lib/logger.ts";
import type { Repository } from "../backup-types.ts";
import { oneAtATime } from "./one-at-a-time.ts";
import { resticArgs, type ResticVerb, type VerbArgs } from "./restic-args.ts";
import {
  AppendOnlyRefusedError,
  displayLocation,
  PartialBackupError,
  ResticError,
  ResticTimeoutError,
  RepositoryMissingError,
  resticErrorFor,
} from "./restic-errors.ts";
import {
  meaningfulLines,
  parseBackupLine,
  parseCheckOutput,
  parseKeyList,
  parseRepositoryConfig,
  parseSnapshots,
  skippedSourcePaths,
  type BackupProgress,
  type BackupSummary,
  type CheckResult,
  type RepositoryConfig,
  type RepositoryKey,
  type Snapshot,
} from "./restic-output.ts";
import { runResticProcess, takeStaleLockMark, type ResticExit, type ResticRun } from "./restic-process.ts";

export type { ResticVerb } from "./restic-args.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** How long each verb may run before it is killed (override per call or per instance). */
export const DEFAULT_DEADLINES_MS: Record<ResticVerb, number> = {
  backup: 6 * HOUR,
  check: 12 * HOUR,
  copy: 12 * HOUR,
  dump: 6 * HOUR,
  restore: 6 * HOUR,
  prune: 6 * HOUR,
  forget: 30 * MINUTE,
  init: 10 * MINUTE,
  cat: 10 * MINUTE,
  key: 10 * MINUTE,
  snapshots: 10 * MINUTE,
  unlock: 10 * MINUTE,
};

export interface RepositoryInfo extends RepositoryConfig {
  /** The key ids: with the repository id, the "key fingerprint" of the recovery kit. */
  keys: RepositoryKey[];
}

interface Call {
  args: VerbArgs;
  fromRepo?: Repository;
  stdin?: Readable;
  sink?: Writable;
  onLine?: (line: string) => void;
  timeoutMs?: number;
  /** An unsuccessful exit that is still an answer (backup's exit 3, check finding errors). */
  accept?: (exit: ResticExit) => boolean;
}

type Deadline = { timeoutMs?: number };

/** Deleting through an append-only endpoint cannot work (the server refuses every delete): say so at once and clearly. */
function refuseOnAppendOnly(repo: Repository, verb: "forget" | "prune"): void {
  if (!repo.appendOnly) return;
  throw new AppendOnlyRefusedError(
    `restic ${verb} refused on the ${repo.role} repository ${displayLocation(repo.location)}: it is served append-only (${repo.appendOnly.served}), which refuses every deletion`,
    {
      hint: "forget and prune run only through the repository's maintenance access, in the retention job (`plumctl backup forget`, or on the backup schedule)",
    },
  );
}

/**
 * The restic wrapper: one method per verb, each a single restic process run with an argument array. The
 * repository reaches restic only through RESTIC_REPOSITORY and its password through RESTIC_PASSWORD_FILE
 * (RESTIC_FROM_REPOSITORY and RESTIC_FROM_PASSWORD_FILE for the source of a copy). A repository served
 * append-only (`repo.appendOnly`) is reached at its endpoint, and `forget` and `prune` on it are refused:
 * they run on its maintenance access (append-only-server.ts, `maintenanceAccess`). One command per repository at a time; a command killed at its deadline makes the next one on that
 * repository run `unlock` first, since the killed restic may have left its lock behind.
 */
export class Restic {
  private readonly binary: string;
  private readonly log?: Logger;
  private readonly deadlines: Record<ResticVerb, number>;

  constructor(opts: { binary?: string; log?: Logger; deadlinesMs?: Partial<Record<ResticVerb, number>> } = {}) {
    this.binary = opts.binary ?? "restic";
    this.log = opts.log;
    this.deadlines = { ...DEFAULT_DEADLINES_MS, ...opts.deadlinesMs };
  }

  async isInitialised(repo: Repository, opts: Deadline = {}): Promise<boolean> {
    try {
      await this.execute(repo, { args: resticArgs.catConfig(), ...opts });
      return true;
    } catch (err) {
      if (err instanceof RepositoryMissingError) return false;
      throw err;
    }
  }

  /** A new repository; `fromRepo` + `copyChunkerParams` make it a second site that deduplicates copies like the first. */
  async init(repo: Repository, opts: { fromRepo?: Repository; copyChunkerParams?: boolean } & Deadline = {}): Promise<void> {
    const args = resticArgs.init({ fromRepo: !!opts.fromRepo, copyChunkerParams: opts.copyChunkerParams });
    await this.execute(repo, { args, fromRepo: opts.fromRepo, timeoutMs: opts.timeoutMs });
  }

  /** Back up a stream as one file named `filename`. The producer's own exit status is the caller's to check. */
  /** `shortIdIsEnough`: skip looking up the full id on restic 0.14 (a caller resolving several at once). */
  backupStdin(
    repo: Repository,
    input: Readable,
    opts: { filename: string; tags: string[]; onProgress?: (p: BackupProgress) => void; shortIdIsEnough?: boolean } & Deadline,
  ): Promise<BackupSummary> {
    return this.backup(repo, resticArgs.backup(opts.tags, { stdinFilename: opts.filename }), { ...opts, stdin: input });
  }

  backupPaths(
    repo: Repository,
    paths: string[],
    opts: { tags: string[]; onProgress?: (p: BackupProgress) => void; shortIdIsEnough?: boolean } & Deadline,
  ): Promise<BackupSummary> {
    return this.backup(repo, resticArgs.backup(opts.tags, { paths }), opts);
  }

  /** Snapshots carrying every one of `tags` (restic's `--tag a,b`), or those with the given ids. */
  async snapshots(repo: Repository, opts: { tags?: string[]; ids?: string[] } & Deadline = {}): Promise<Snapshot[]> {
    const exit = await this.execute(repo, { args: resticArgs.snapshots(opts), timeoutMs: opts.timeoutMs });
    return parseSnapshots(exit.stdout);
  }

  /** Forget these snapshots (full ids); those already gone are skipped. Returns the ids forgotten. */
  async forget(repo: Repository, snapshotIds: string[], opts: Deadline = {}): Promise<string[]> {
    refuseOnAppendOnly(repo, "forget");
    if (snapshotIds.length === 0) return [];
    const present = new Set((await this.snapshots(repo, opts)).map((s) => s.id));
    const ids = [...new Set(snapshotIds)].filter((id) => present.has(id));
    if (ids.length > 0) await this.execute(repo, { args: resticArgs.forget(ids), ...opts });
    return ids;
  }

  /** Remove the data no snapshot uses any more. Text output (restic has no JSON for prune). */
  async prune(repo: Repository, opts: Deadline = {}): Promise<{ output: string[] }> {
    refuseOnAppendOnly(repo, "prune");
    const exit = await this.execute(repo, { args: resticArgs.prune(), ...opts });
    return { output: meaningfulLines(exit.stdout) };
  }

  /**
   * Copy snapshots from `from` into `to` (restic skips those copied before). Copies get new ids and an
   * `original` field: returns source id → id of its copy in `to`.
   */
  async copy(from: Repository, to: Repository, snapshotIds: string[], opts: Deadline = {}): Promise<Record<string, string>> {
    if (snapshotIds.length === 0) return {}; // restic copies every snapshot when given none
    await oneAtATime(`restic:${from.location}`, () => this.execute(to, { args: resticArgs.copy(snapshotIds), fromRepo: from, ...opts }));
    const wanted = new Set(snapshotIds);
    const copies: Record<string, string> = {};
    for (const s of await this.snapshots(to)) if (s.original && wanted.has(s.original)) copies[s.original] = s.id;
    return copies;
  }

  /** `check`, reading one subset of the data packs ("n/t", "x%"); errors found are a result (ok: false), not a throw. */
  async check(repo: Repository, opts: { readDataSubset?: string } & Deadline = {}): Promise<CheckResult> {
    const exit = await this.execute(repo, {
      args: resticArgs.check(opts.readDataSubset),
      timeoutMs: opts.timeoutMs,
      accept: (e) => /repository contains errors/i.test(e.stderr),
    });
    return parseCheckOutput(exit.stdout, exit.stderr, opts.readDataSubset);
  }

  async restore(repo: Repository, snapshotId: string, target: string, opts: { include?: string[] } & Deadline = {}): Promise<{ output: string[] }> {
    const exit = await this.execute(repo, { args: resticArgs.restore(snapshotId, target, opts.include), timeoutMs: opts.timeoutMs });
    return { output: meaningfulLines(exit.stdout) };
  }

  /** Write one file of a snapshot into `sink` (ended when restic is done). A failing sink is reported after restic's output is drained. */
  async dump(repo: Repository, snapshotId: string, filePath: string, sink: Writable, opts: Deadline = {}): Promise<void> {
    await this.execute(repo, { args: resticArgs.dump(snapshotId, filePath), sink, ...opts });
  }

  /** Remove stale locks (those of restic processes that are gone); live ones stay. */
  async unlock(repo: Repository, opts: Deadline = {}): Promise<void> {
    await this.execute(repo, { args: resticArgs.unlock(), ...opts });
  }

  async repositoryInfo(repo: Repository, opts: Deadline = {}): Promise<RepositoryInfo> {
    const config = parseRepositoryConfig((await this.execute(repo, { args: resticArgs.catConfig(), ...opts })).stdout);
    const keys = parseKeyList((await this.execute(repo, { args: resticArgs.keyList(), ...opts })).stdout);
    return { ...config, keys };
  }

  private async backup(
    repo: Repository,
    args: VerbArgs,
    opts: { stdin?: Readable; onProgress?: (p: BackupProgress) => void; shortIdIsEnough?: boolean } & Deadline,
  ): Promise<BackupSummary> {
    let summary: BackupSummary | undefined;
    const setAside: string[] = [];
    const exit = await this.execute(repo, {
      args,
      stdin: opts.stdin,
      timeoutMs: opts.timeoutMs,
      accept: (e) => e.exitCode === 3,
      onLine: (line) => {
        const parsed = parseBackupLine(line);
        if (parsed.type === "status") opts.onProgress?.(parsed.progress);
        else if (parsed.type === "summary") summary = parsed.summary;
        else setAside.push(parsed.type === "error" ? `${parsed.item ?? "?"}: ${parsed.error}` : parsed.line);
      },
    });
    const stderrTail = outputTail([...setAside, exit.stderr].join("\n"));
    const skipped = skippedSourcePaths(exit.stderr);
    const partial = exit.exitCode === 3 || skipped.length > 0;
    if (!summary && !partial)
      throw new ResticError("restic backup ended without a summary line: no snapshot can be trusted", {
        command: exit.command,
        exitCode: exit.exitCode,
        stderrTail,
      });
    if (summary && summary.snapshotId.length < 64 && !opts.shortIdIsEnough)
      summary = { ...summary, snapshotId: await this.fullSnapshotId(repo, summary.snapshotId) };
    if (partial) {
      const why = skipped.length > 0 ? `missing source ${skipped.join(", ")}` : "some files could not be read";
      const saved = summary ? `saved an incomplete snapshot ${summary.snapshotId.slice(0, 8)}` : "is incomplete";
      throw new PartialBackupError(`restic backup ${saved}: ${why}`, { command: exit.command, exitCode: exit.exitCode, stderrTail, summary });
    }
    return summary!;
  }

  /** 0.14 reports a new snapshot by its short id; the catalogue keeps full ids. */
  private async fullSnapshotId(repo: Repository, shortId: string): Promise<string> {
    const matches = (await this.snapshots(repo, { ids: [shortId] })).filter((s) => s.id.startsWith(shortId));
    if (matches.length !== 1)
      throw new ResticError(`snapshot ${shortId} reported by restic backup is not in the repository (${matches.length} matches)`, {
        command: ["restic", "snapshots", shortId],
        exitCode: 0,
        stderrTail: "",
      });
    return matches[0].id;
  }

  private execute(repo: Repository, call: Call): Promise<ResticExit> {
    return oneAtATime(`restic:${repo.location}`, async () => {
      if (call.args[0] !== "unlock" && takeStaleLockMark(repo.location)) {
        this.log?.info({ repository: displayLocation(repo.location) }, "restic: the previous command was killed, removing stale locks first");
        await this.spawn(repo, { args: resticArgs.unlock() }).catch((err: Error) => this.log?.warn({ err: err.message }, "restic unlock failed"));
      }
      return this.spawn(repo, call);
    });
  }

  private async spawn(repo: Repository, call: Call): Promise<ResticExit> {
    const run: ResticRun = {
      binary: this.binary,
      repo,
      args: call.args,
      fromRepo: call.fromRepo,
      stdin: call.stdin,
      sink: call.sink,
      onLine: call.onLine,
      timeoutMs: call.timeoutMs ?? this.deadlines[call.args[0]],
    };
    const started = Date.now();
    const exit = await runResticProcess(run);
    this.log?.debug({ command: exit.command, appendOnly: !!repo.appendOnly, exitCode: exit.exitCode, ms: Date.now() - started }, "restic");
    if (exit.timedOut) {
      throw new ResticTimeoutError(
        `restic ${call.args[0]} on ${exit.command[2]} ran past its deadline of ${Math.round(run.timeoutMs / 1000)} s and was killed`,
        {
          command: exit.command,
          exitCode: exit.exitCode,
          signal: exit.signal,
          timedOut: true,
          stderrTail: outputTail(exit.stderr),
          hint: "a larger repository or a slower link may need a longer deadline; the next command on this repository removes the lock it left",
        },
      );
    }
    if (exit.exitCode !== 0 && !call.accept?.(exit)) throw resticErrorFor(exit.command, exit.exitCode, outputTail(exit.stderr), exit.signal);
    if (exit.outputError) throw exit.outputError;
    return exit;
  }
}
