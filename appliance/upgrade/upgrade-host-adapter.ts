import { statfsSync } from "node:fs";
import path from "node:path";
import type { PlumConfig } from "../../lib/config.ts";
import { connectAdmin, connectionUrl, type PgServer } from "../../lib/db/database.ts";
import { applyProductPrivileges, roleServer, type ProductRoles } from "../../lib/db/product-roles.ts";
import type { Logger } from "../../lib/logger.ts";
import { homeLayout } from "../../lib/paths.ts";
import { supportBundleWriter, type DoctorChecks } from "../support/support-bundle.ts";
import type { AgentJobRequest } from "../../backup/jobs/backup-requests.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { Production } from "../production.ts";
import { instanceId, type RuntimeDriver } from "../runtimes/runtime.ts";
import { runReleaseMigrate, runReleaseValidate } from "./release-commands-runner.ts";
import { stagingDatabase } from "./staging-database.ts";
import type { DatabaseRole, ReleaseCatalogue, UpgradeHost } from "./upgrade-host.ts";

const MIGRATE_TIMEOUT_MS = 30 * 60_000;
const VALIDATE_TIMEOUT_MS = 15 * 60_000;

export function stagingDatabaseOf(config: PlumConfig): string {
  return `${config.database.productDatabase}_staging`;
}

/** The snapshot restored once more beside staging, for the data-diff gate's row-by-row comparison (then dropped). */
export function gateScratchDatabaseOf(config: PlumConfig): string {
  return `${stagingDatabaseOf(config)}_before`;
}

/** Where the agent writes the support bundles of failed and rolled-back upgrades. */
export function supportDirOf(config: PlumConfig): string {
  return path.join(config.home, "support");
}

/**
 * How the agent writes the bundle of an unsuccessful upgrade: in PLUM_HOME/support (0700), beside nothing the
 * product reads, named for the upgrade (two may end in one second), with the doctor checks its caller passed
 * down (installer/ is above this layer). Returns the file.
 */
export function upgradeSupportBundle(config: PlumConfig, doctor?: DoctorChecks): (upgradeId: number, status: string) => Promise<string> {
  return async (upgradeId, status) => (await supportBundleWriter({ config, dir: supportDirOf(config), label: `upgrade-${upgradeId}-${status}`, doctor })).file;
}

/**
 * The agent's UpgradeHost: production through `Production`, staging on the same server beside it, the releases'
 * own commands through the runtime, snapshots and restores through the backup job queue.
 */
export function agentUpgradeHost(deps: {
  config: PlumConfig;
  log: Logger;
  audit: AuditLog;
  pg: PgServer;
  /** The product's roles: its instances and suites log in as `app`, the releases' migrations as `migrate`. */
  roles: ProductRoles;
  runtime: RuntimeDriver;
  production: Production;
  releases: ReleaseCatalogue;
  /** Run a job on the backup queue to its end; throws when it failed; resolves with its result. */
  runJob(request: AgentJobRequest, actor: string): Promise<unknown>;
  /** The doctor checks for the support bundles of unsuccessful upgrades; without them a bundle says it has none. */
  doctor?: DoctorChecks;
}): UpgradeHost {
  const { config, pg, runtime, production, releases } = deps;
  const staging = stagingDatabaseOf(config);
  const database = stagingDatabase({ pg, database: staging, scratch: gateScratchDatabaseOf(config), roles: config.database.roles, runJob: deps.runJob });
  const databaseOf = (role: DatabaseRole) => (role === "staging" ? staging : config.database.productDatabase);
  return {
    get settings() {
      return config.upgrades;
    },
    log: deps.log,
    audit: deps.audit,
    releases,
    production: {
      current: () => production.current(),
      ensureWarm: async (version) => (await production.ensureWarm(releases.ref(version))).id,
      switchTo: (version, opts) => production.switchTo(releases.ref(version), opts),
      stop: (version) => production.stop(version),
      health: (version) => production.health(version),
      onAnswer: (listener) => production.onAnswer(listener),
    },
    staging: {
      restore: database.restore,
      fingerprint: database.fingerprint,
      rowDifferences: database.rowDifferences,
      start: async (version) => ({ url: (await production.startReady("staging", releases.ref(version), staging)).url }),
      stop: (version) => runtime.stop(instanceId("staging", version)),
      async drop() {
        for (const i of runtime.list().filter((x) => x.slot === "staging")) await runtime.stop(i.id);
        await database.drop();
      },
    },
    commands: {
      async migrate(version, role, opts = {}) {
        const url = connectionUrl(roleServer(pg, deps.roles.migrate), databaseOf(role));
        const migrated = await runReleaseMigrate(runtime, releases.ref(version), url, { to: opts.to, timeoutMs: MIGRATE_TIMEOUT_MS });
        // A release's migrations may make objects its default privileges do not cover (a type, a function by another role).
        await applyProductPrivileges(pg, databaseOf(role), config.database.roles);
        return migrated;
      },
      validate: (version, instanceUrl, role, suites) =>
        runReleaseValidate(
          runtime,
          releases.ref(version),
          instanceUrl,
          connectionUrl(roleServer(pg, deps.roles.app), databaseOf(role)),
          suites,
          VALIDATE_TIMEOUT_MS,
        ),
    },
    async disk() {
      const admin = await connectAdmin(pg);
      let databaseBytes: number;
      try {
        databaseBytes = Number((await admin.query("select pg_database_size($1) as n", [config.database.productDatabase])).rows[0].n);
      } finally {
        await admin.end();
      }
      if (!pg.embedded) return { databaseBytes };
      // The staging copy lands next to production in the embedded server's data directory.
      const fs = statfsSync(homeLayout(config.home).pgData);
      return { databaseBytes, freeBytes: fs.bavail * fs.bsize };
    },
    async snapshot(actor) {
      const set = (await deps.runJob({ kind: "backup", setKind: "pre-upgrade" }, actor)) as { id: string; startedAt: Date };
      return { setId: set.id, takenAt: set.startedAt };
    },
    async restoreProduction(setId, actor) {
      await deps.runJob({ kind: "restore", setId, db: true, files: false, from: "primary" }, actor);
    },
    supportBundle: upgradeSupportBundle(config, deps.doctor),
    supportDir: supportDirOf(config),
  };
}
