import type { PlumConfig } from "../../lib/config.ts";
import type { MigrationDataChanges } from "../../lib/db/data-changes.ts";
import type { DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";
import type { RowDifferences } from "../../lib/db/row-differences.ts";
import type { Logger } from "../../lib/logger.ts";
import type { AuditEvent } from "../audit/audit-log.ts";
import type { AnswerListener } from "../proxy/edge-proxy.ts";
import type { HealthReport, ReleaseRef } from "../runtimes/runtime.ts";
import type { SuiteOutcome } from "./release-commands-runner.ts";

/** What the upgrade steps need to know of a release: the parts of its signed manifest they act on. */
export interface ReleaseFacts {
  version: string;
  schemaVersion: string;
  minimumVersion: string;
  suites: string[];
  /** What its migrations change in the data, by migration (the manifest's); undefined: a bundle built before declarations. */
  dataChanges?: Record<string, MigrationDataChanges>;
}

/** The releases the appliance holds (the installed one and the imported ones), as the upgrade sees them. */
export interface ReleaseCatalogue {
  ref(version: string): ReleaseRef;
  facts(version: string): ReleaseFacts;
  /** Check again, before anything changes: signature of the stored manifest, checksums, upgrade path, disk. */
  recheck(version: string, currentVersion: string): Promise<string[]>;
  /** Keep the newest releases and the protected ones; returns what was removed. */
  prune(protect: string[]): Promise<string[]>;
}

/** The production slot as the upgrade drives it (the agent's `Production`). Releases are named by version. */
export interface ProductionSlot {
  /** The instance serving production now, if any. */
  current(): { id: string; version: string } | undefined;
  /** The release's production instance, running and ready (started again when a restart lost it); its id. */
  ensureWarm(version: string): Promise<string>;
  /**
   * Give production to the release: its instance warm, the proxy switched atomically, the previous drained and,
   * unless `keepPrevious` (promote keeps the old warm for the soak), stopped. `brief`: a short warm-up (a breach
   * is serving meanwhile).
   */
  switchTo(
    version: string,
    opts?: { keepPrevious?: boolean; brief?: boolean },
  ): Promise<{ instance: string; previous?: string; switchMs: number; switchedAt: Date }>;
  /** Drain and stop the release's production instance; nothing when none runs. */
  stop(version: string): Promise<void>;
  health(version: string): Promise<HealthReport>;
  /** Follow the proxy's answers (the soak judges the promoted release by them); returns the unsubscribe. */
  onAnswer(listener: AnswerListener): () => void;
}

/** The staging slot: a copy of production's data and the instances started on it. */
export interface StagingSlot {
  /**
   * Restore a set's product database into the staging database (through the backup job queue), verified. With
   * the restored copy's fingerprint when the verification measured one (a set whose manifest has fingerprints).
   */
  restore(setId: string, actor: string): Promise<{ checks: number; failed: string[]; fingerprint?: { fingerprint: DatabaseFingerprint; seconds: number } }>;
  /** Fingerprints of the staging database's product tables now (see lib/db/table-fingerprints.ts); with its time. */
  fingerprint(): Promise<{ fingerprint: DatabaseFingerprint; seconds: number }>;
  /**
   * Which rows differ between the set (restored once more, into a scratch database dropped afterwards) and staging
   * now, for the tables asked: the data-diff gate's examples, on its failure path only.
   */
  rowDifferences(setId: string, tables: RowComparison[], actor: string): Promise<Array<{ table: string; differences?: RowDifferences; error?: string }>>;
  /** Start a release on the staging database and wait until it is ready; its URL. */
  start(version: string): Promise<{ url: string }>;
  stop(version: string): Promise<void>;
  /** Stop every staging instance and drop the staging database. Idempotent. */
  drop(): Promise<void>;
}

/** One table to compare row by row: its name, key and columns before the migrations and after them (pairwise). */
export interface RowComparison {
  before: { table: string; key: string[]; columns: string[] };
  after: { table: string; key: string[]; columns: string[] };
}

export type DatabaseRole = "production" | "staging";

/** A release's own `plumctl` commands, run against production's or staging's database. */
export interface ReleaseCommands {
  migrate(version: string, database: DatabaseRole, opts?: { to?: string }): Promise<{ ran: string[]; schemaVersion: string; seconds: number }>;
  validate(version: string, instanceUrl: string, database: DatabaseRole, suites: string[]): Promise<SuiteOutcome>;
}

/**
 * Everything the upgrade manager drives, in the words of its steps. The agent gives one over its Production,
 * runtime, databases and backup jobs (upgrade-host-adapter.ts); the tests give an in-memory one.
 */
export interface UpgradeHost {
  /** Read at each use: a reloaded plum.yaml applies to the next decision. */
  readonly settings: PlumConfig["upgrades"];
  log: Logger;
  audit: { append(event: AuditEvent): Promise<unknown> };
  releases: ReleaseCatalogue;
  production: ProductionSlot;
  staging: StagingSlot;
  commands: ReleaseCommands;
  /** The product database's size and the free disk where a staging copy lands (undefined: not measurable here). */
  disk(): Promise<{ databaseBytes: number; freeBytes?: number }>;
  /** A pre-upgrade backup set through the backup agent's job queue: its id and when it was taken. */
  snapshot(actor: string): Promise<{ setId: string; takenAt: Date }>;
  /** Restore a set's product database over production (the backup agent's restore: detach, swap, re-attach). */
  restoreProduction(setId: string, actor: string): Promise<void>;
  /** Write a support bundle (appliance/support) for an upgrade that failed or rolled back; the file's path. */
  supportBundle(upgradeId: number, status: string): Promise<string>;
  /** The folder `supportBundle` writes into (PLUM_HOME/support): the console serves the bundles from there only. */
  readonly supportDir: string;
}
