import type { PlumConfig } from "../../lib/config.ts";
import type { Logger } from "../../lib/logger.ts";
import type { PgServer } from "../../lib/db/database.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { EdgeProxy } from "../proxy/edge-proxy.ts";
import type { InstanceInfo, ReleaseRef, RuntimeDriver, Slot } from "../runtimes/runtime.ts";

/** What the upgrade steps need to know of a release: the parts of its signed manifest they act on. */
export interface ReleaseFacts {
  version: string;
  schemaVersion: string;
  minimumVersion: string;
  suites: string[];
}

/** The releases the appliance holds (the installed one and the imported ones), as the upgrade sees them. */
export interface ReleaseCatalogue {
  ref(version: string): ReleaseRef;
  facts(version: string): ReleaseFacts;
  /** Check again, before anything changes: signature of the stored manifest, checksums, upgrade path, disk. */
  recheck(version: string, currentVersion: string): Promise<string[]>;
  /** Keep the newest releases and the protected ones; returns what was removed. */
  prune(protect: string[]): string[];
}

/**
 * Everything the upgrade manager drives, given by the agent. It speaks only the runtime interface, so a
 * Docker driver slots in without touching the steps.
 */
export interface UpgradeHost {
  config: PlumConfig;
  log: Logger;
  audit: AuditLog;
  runtime: RuntimeDriver;
  proxy: EdgeProxy;
  pg: PgServer;
  releases: ReleaseCatalogue;
  /** Start a release in a slot against a database and wait (deadline) until it is ready; stopped again if it never is. */
  startReady(slot: Slot, release: ReleaseRef, database: string): Promise<InstanceInfo>;
  /** A pre-upgrade backup set through the backup agent's job queue: its id and when it was taken. */
  snapshot(actor: string): Promise<{ setId: string; takenAt: Date }>;
  /** Restore a set's product database into a new database (the staging copy), verified against the set's manifest. */
  restoreInto(setId: string, database: string): Promise<{ checks: number; failed: string[] }>;
  /** Restore a set's product database over production (the backup agent's restore: stop, swap, start). */
  restoreProduction(setId: string, actor: string): Promise<void>;
}
