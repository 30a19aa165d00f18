import { z } from "zod";

/**
 * Parsers of what restic prints, validated with zod so that a restic that changed its output fails loudly
 * here rather than as an undefined deep inside a backup. Unknown fields are dropped (newer restic adds some).
 * Captured outputs of restic 0.14 live in test/fixtures/restic/.
 */

const count = z.number().int().nonnegative();

const statusLine = z.object({
  message_type: z.literal("status"),
  percent_done: z.number(),
  seconds_elapsed: z.number().optional(),
  total_files: count.optional(),
  files_done: count.optional(),
  total_bytes: count.optional(),
  bytes_done: count.optional(),
  error_count: count.optional(),
});

const summaryLine = z.object({
  message_type: z.literal("summary"),
  files_new: count,
  files_changed: count,
  files_unmodified: count,
  data_added: count,
  total_files_processed: count,
  total_bytes_processed: count,
  total_duration: z.number(),
  // 0.14 prints the short id, 0.15+ the full one; absent with --dry-run.
  snapshot_id: z.string().regex(/^[0-9a-f]{8,64}$/),
});

const errorLine = z.object({
  message_type: z.literal("error"),
  error: z.unknown(),
  during: z.string().optional(),
  item: z.string().optional(),
});

export interface BackupProgress {
  percentDone: number;
  secondsElapsed?: number;
  filesDone?: number;
  totalFiles?: number;
  bytesDone?: number;
  totalBytes?: number;
}

export interface BackupSummary {
  /** The full 64-hex id (resolved from the short one 0.14 prints). */
  snapshotId: string;
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  filesProcessed: number;
  bytesAdded: number;
  bytesProcessed: number;
  durationSeconds: number;
}

export type BackupLine =
  | { type: "status"; progress: BackupProgress }
  | { type: "summary"; summary: BackupSummary }
  | { type: "error"; item?: string; during?: string; error: string }
  | { type: "other"; line: string };

function jsonOf(line: string): unknown {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** One line of `backup --json`; anything that is not one of its JSON messages comes back as "other". */
export function parseBackupLine(line: string): BackupLine {
  const value = jsonOf(line.trim());
  const type = (value as { message_type?: unknown } | undefined)?.message_type;
  if (type === "status") {
    const s = statusLine.parse(value);
    return {
      type: "status",
      progress: {
        percentDone: s.percent_done,
        secondsElapsed: s.seconds_elapsed,
        filesDone: s.files_done,
        totalFiles: s.total_files,
        bytesDone: s.bytes_done,
        totalBytes: s.total_bytes,
      },
    };
  }
  if (type === "summary") {
    const s = summaryLine.parse(value);
    return {
      type: "summary",
      summary: {
        snapshotId: s.snapshot_id,
        filesNew: s.files_new,
        filesChanged: s.files_changed,
        filesUnmodified: s.files_unmodified,
        filesProcessed: s.total_files_processed,
        bytesAdded: s.data_added,
        bytesProcessed: s.total_bytes_processed,
        durationSeconds: s.total_duration,
      },
    };
  }
  if (type === "error") {
    const e = errorLine.parse(value);
    return { type: "error", item: e.item, during: e.during, error: typeof e.error === "string" ? e.error : JSON.stringify(e.error) };
  }
  return { type: "other", line };
}

export interface Snapshot {
  id: string;
  shortId: string;
  time: Date;
  paths: string[];
  hostname: string;
  tags: string[];
  /** Set on a copy: the id of the snapshot it was copied from. */
  original?: string;
  parent?: string;
}

const fullId = z.string().regex(/^[0-9a-f]{64}$/);
const snapshotJson = z.object({
  id: fullId,
  short_id: z.string().optional(),
  time: z.string(),
  paths: z.array(z.string()).default([]),
  hostname: z.string().default(""),
  tags: z.array(z.string()).nullish(),
  original: fullId.optional(),
  parent: fullId.optional(),
});

/** `snapshots --json`: one JSON array (restic prints "[]" or "null" when there are none). */
export function parseSnapshots(stdout: string): Snapshot[] {
  const list =
    z
      .array(snapshotJson)
      .nullable()
      .parse(JSON.parse(stdout.trim() || "[]")) ?? [];
  return list.map((s) => ({
    id: s.id,
    shortId: s.short_id ?? s.id.slice(0, 8),
    time: new Date(s.time),
    paths: s.paths,
    hostname: s.hostname,
    tags: s.tags ?? [],
    ...(s.original ? { original: s.original } : {}),
    ...(s.parent ? { parent: s.parent } : {}),
  }));
}

export interface RepositoryConfig {
  id: string;
  version: number;
  chunkerPolynomial: string;
}

/** `cat config` (JSON even without --json). */
export function parseRepositoryConfig(stdout: string): RepositoryConfig {
  const c = z.object({ version: z.number().int(), id: fullId, chunker_polynomial: z.string().regex(/^[0-9a-f]+$/) }).parse(JSON.parse(stdout));
  return { id: c.id, version: c.version, chunkerPolynomial: c.chunker_polynomial };
}

export interface RepositoryKey {
  id: string;
  current: boolean;
  userName: string;
  hostName: string;
  created: string;
}

/** `key list --json`. */
export function parseKeyList(stdout: string): RepositoryKey[] {
  const keys = z
    .array(z.object({ id: z.string().regex(/^[0-9a-f]{8,64}$/), current: z.boolean(), userName: z.string(), hostName: z.string(), created: z.string() }))
    .parse(JSON.parse(stdout));
  return keys.map((k) => ({ id: k.id, current: k.current, userName: k.userName, hostName: k.hostName, created: k.created }));
}

export interface CheckResult {
  ok: boolean;
  readDataSubset?: string;
  /** What restic printed, progress bars left out: an auditor reads this. */
  output: string[];
}

const PROGRESS_BAR = /^\[\d+:\d+\]\s+\d+(\.\d+)?%/;

/** Text output, progress bars and blank lines left out. */
export function meaningfulLines(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l !== "" && !PROGRESS_BAR.test(l.trim()));
}

/** `check` prints text; "no errors were found" is its verdict, "repository contains errors" the contrary. */
export function parseCheckOutput(stdout: string, stderr: string, readDataSubset?: string): CheckResult {
  const output = [...meaningfulLines(stdout), ...meaningfulLines(stderr)];
  const ok = /no errors were found/.test(stdout) && !/repository contains errors/i.test(stderr);
  return { ok, readDataSubset, output };
}

/** The lines of 0.14 that say a source path was skipped (exit 0 there; exit 3 from 0.19). */
export function skippedSourcePaths(stderr: string): string[] {
  return [...stderr.matchAll(/^(.*) does not exist, skipping$/gm)].map((m) => m[1]);
}
