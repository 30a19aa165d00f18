import type { BackupStatus } from "../../backup/backup-status.ts";

/**
 * What `plumctl status` reports about an appliance; `plumctl status --json` prints exactly this object. Every
 * key is always present (a part that cannot be read is null, with the reason in `reasons`); times are ISO 8601
 * UTC, sizes bytes, ages whole seconds.
 *
 * - `verdict`: "healthy" when nothing below fails, else "degraded"; `reasons`: one sentence per failure
 *   (status-verdict.ts decides what fails).
 * - `agent`: `running` (its process is there), `answering` (it answered this status), its `version` (the
 *   control plane's release, null when it did not answer), `pid` (from its pid file when it did not answer),
 *   `startedAt`; `pidFile`: the agent lock's file; `hint`: what to do when it does not answer, else null.
 * - `production`: the release serving production (`version`), its `instance`, `healthy` (live and ready),
 *   `live`, `ready`, `detail` (the instance's own words); null when the agent is not running.
 * - `proxy`: the edge proxy's `listening` URL and the `instance` and `version` it sends traffic to (null while
 *   detached); null when the agent is not running.
 * - `database`: `mode` (embedded | external), `host`, `port`, `serverVersion`, `reachable` (answered a query
 *   just now), `detail` (why not, else null).
 * - `backup`: backup/backup-status.ts BackupStatus (last set and its age against the RPO, off-site copy, last
 *   drill and its RTO, every evidence control pass/fail).
 * - `disk`: free and total bytes of the filesystem of PLUM_HOME (`what`: "home") and of the primary repository
 *   when it is a local folder (`what`: "primary repository").
 * - `upgrade`: the unfinished upgrade or rollback of the journal (`id`, `kind`, `status`, `step`, `fromVersion`,
 *   `toVersion`, `startedAt`), null when none is pending or running.
 */
export interface StatusReport {
  verdict: "healthy" | "degraded";
  reasons: string[];
  checkedAt: string;
  agent: { running: boolean; answering: boolean; version: string | null; pid: number | null; startedAt: string | null; pidFile: string; hint: string | null };
  production: { version: string | null; instance: string | null; healthy: boolean; live: boolean; ready: boolean; detail: string } | null;
  proxy: { listening: string; instance: string | null; version: string | null } | null;
  database: { mode: "embedded" | "external"; host: string; port: number; serverVersion: string; reachable: boolean; detail: string | null } | null;
  backup: BackupStatus | null;
  disk: DiskFact[];
  upgrade: { id: number; kind: string; status: string; step: string; fromVersion: string; toVersion: string; startedAt: string } | null;
}

export interface DiskFact {
  what: "home" | "primary repository";
  path: string;
  freeBytes: number;
  totalBytes: number;
}

/** The facts without the verdict: what the gatherers fill in. */
export type StatusFacts = Omit<StatusReport, "verdict" | "reasons"> & {
  /** A part that could not be read, in a sentence (the facts it would give are null). */
  unread: string[];
};
