import { PlumError } from "../../lib/errors.ts";
import { statfsSync } from "node:fs";
import { homeLayout } from "../../lib/paths.ts";
import { connectAdmin, connectionUrl } from "../../lib/db/database.ts";
import { databaseExists, dropDatabase } from "../../backup/restore/whole-databases.ts";
import { instanceId } from "../runtimes/runtime.ts";
import { runReleaseMigrate, runReleaseValidate } from "./release-commands-runner.ts";
import type { UpgradeHost } from "./upgrade-host.ts";
import type { RollbackMode, Upgrade, UpgradeReport } from "./upgrade-journal.ts";

const MIGRATE_TIMEOUT_MS = 30 * 60_000;
const VALIDATE_TIMEOUT_MS = 15 * 60_000;

export function stagingDatabase(host: UpgradeHost): string {
  return `${host.config.database.productDatabase}_staging`;
}

function productUrl(host: UpgradeHost, database = host.config.database.productDatabase): string {
  return connectionUrl(host.pg, database);
}

const MIB = 2 ** 20;

/** verify: the stored bundle is still the vendor's, the path is allowed, there is room for a staging copy. */
export async function verifyStep(host: UpgradeHost, u: Upgrade): Promise<Record<string, unknown>> {
  const checks = await host.releases.recheck(u.toVersion, u.fromVersion);
  const admin = await connectAdmin(host.pg);
  let databaseBytes: number;
  try {
    databaseBytes = Number((await admin.query("select pg_database_size($1) as n", [host.config.database.productDatabase])).rows[0].n);
  } finally {
    await admin.end();
  }
  if (host.pg.embedded) {
    // The staging copy lands next to production in the embedded server's data directory.
    const fs = statfsSync(homeLayout(host.config.home).pgData);
    const free = fs.bavail * fs.bsize;
    const needed = 2 * databaseBytes + 200 * MIB;
    if (free < needed) {
      throw new PlumError(
        `not enough free disk for a staging copy: ${Math.round(free / MIB)} MiB free for the database, ${Math.round(needed / MIB)} MiB needed (twice the ${Math.round(databaseBytes / MIB)} MiB product database, plus 200 MiB)`,
        { hint: "free space on the file system holding PLUM_HOME/pgdata, then start the upgrade again" },
      );
    }
    checks.push(`disk: ${Math.round(free / MIB)} MiB free, ${Math.round(needed / MIB)} MiB needed for a staging copy`);
  } else {
    checks.push(
      `disk: the product database is ${Math.round(databaseBytes / MIB)} MiB; your PostgreSQL server needs as much free for the staging copy (not measurable from here)`,
    );
  }
  return { checks };
}

/** snapshot: a pre-upgrade backup set (reused when a resumed upgrade already took one). */
export async function snapshotStep(host: UpgradeHost, u: Upgrade): Promise<{ setId: string; takenAt: Date }> {
  if (u.snapshotSetId && u.snapshotAt) return { setId: u.snapshotSetId, takenAt: u.snapshotAt };
  return host.snapshot(`upgrade:${u.id}`);
}

/** stage: the snapshot restored into the staging database (which proves it restores), then the new migrations there. */
export async function stageStep(host: UpgradeHost, u: Upgrade, report: UpgradeReport): Promise<Record<string, unknown>> {
  if (!u.snapshotSetId) throw new PlumError("the upgrade has no snapshot to stage from");
  await teardownStaging(host);
  const restored = await host.restoreInto(u.snapshotSetId, stagingDatabase(host));
  if (restored.failed.length > 0) throw new PlumError(`the pre-upgrade snapshot did not restore intact into staging: ${restored.failed.join("; ")}`);
  const migrated = await runReleaseMigrate(host.runtime, host.releases.ref(u.toVersion), productUrl(host, stagingDatabase(host)), {
    timeoutMs: MIGRATE_TIMEOUT_MS,
  });
  report.migrations = { ...report.migrations, staging: { ran: migrated.ran, seconds: migrated.seconds } };
  return { restoredChecks: restored.checks, migrations: migrated.ran, migrationSeconds: migrated.seconds, schemaVersion: migrated.schemaVersion };
}

/**
 * validate: the new release's suites against its staging instance, then the current release's smoke suite on the
 * migrated staging schema, which decides how a rollback can be done. Throws (abort) when the new release fails.
 */
export async function validateStep(host: UpgradeHost, u: Upgrade, report: UpgradeReport): Promise<{ mode: RollbackMode; why: string }> {
  const staging = stagingDatabase(host);
  const next = host.releases.ref(u.toVersion);
  const current = host.releases.ref(u.fromVersion);
  const facts = host.releases.facts(u.toVersion);
  const nextInstance = await host.startReady("staging", next, staging);
  let releaseOutcome;
  try {
    releaseOutcome = await runReleaseValidate(host.runtime, next, nextInstance.url, productUrl(host, staging), facts.suites, VALIDATE_TIMEOUT_MS);
  } finally {
    await host.runtime.stop(nextInstance.id);
  }
  report.suites = { ...report.suites, release: releaseOutcome.reports };
  if (!releaseOutcome.passed)
    throw new PlumError(`${u.toVersion} failed validation on staging: ${releaseOutcome.failures.join("; ")}`, {
      hint: "production was not touched; the report on the Upgrade page lists every check",
    });

  const fromSchema = host.releases.facts(u.fromVersion).schemaVersion;
  const smoke = await (async () => {
    try {
      const old = await host.startReady("staging", current, staging);
      try {
        return await runReleaseValidate(host.runtime, current, old.url, productUrl(host, staging), ["smoke"], VALIDATE_TIMEOUT_MS);
      } finally {
        await host.runtime.stop(old.id);
      }
    } catch (err) {
      return { passed: false, reports: [], failures: [`${u.fromVersion} did not start on the new schema: ${(err as Error).message}`], seconds: 0 };
    }
  })();
  report.suites = { ...report.suites, currentSmoke: smoke.reports };
  if (smoke.passed) return { mode: "traffic-only", why: `${u.fromVersion}'s smoke suite passed on ${u.toVersion}'s schema: traffic can go back at once` };
  try {
    const down = await runReleaseMigrate(host.runtime, next, productUrl(host, staging), { to: fromSchema, timeoutMs: MIGRATE_TIMEOUT_MS });
    return {
      mode: "down-migrations",
      why: `${u.fromVersion}'s smoke suite failed on the new schema (${smoke.failures.slice(0, 3).join("; ")}); ${u.toVersion}'s down migrations took staging back to ${fromSchema} in ${down.seconds.toFixed(1)} s`,
    };
  } catch (err) {
    return {
      mode: "restore-required",
      why: `${u.fromVersion}'s smoke suite failed on the new schema and the down migrations failed on staging (${(err as Error).message}): only the pre-upgrade snapshot can undo it`,
    };
  }
}

/**
 * promote: migrate production with the new release, start it, health-gate it, switch the proxy. The old instance
 * keeps running (warm) for the soak. Idempotent: a resumed promote skips what is already done.
 */
export async function promoteStep(host: UpgradeHost, u: Upgrade, report: UpgradeReport): Promise<Record<string, unknown>> {
  const next = host.releases.ref(u.toVersion);
  if (host.proxy.current?.version === u.toVersion) return { alreadySwitched: true };
  const migrated = await runReleaseMigrate(host.runtime, next, productUrl(host), { timeoutMs: MIGRATE_TIMEOUT_MS });
  report.migrations = { ...report.migrations, production: { ran: migrated.ran, seconds: migrated.seconds } };
  const id = instanceId("production", u.toVersion);
  const running = host.runtime.list().find((i) => i.id === id);
  const instance = running ?? (await host.startReady("production", next, host.config.database.productDatabase));
  await host.proxy.warm(instance);
  const switchStarted = Date.now();
  const previous = host.proxy.switchTo({ id: instance.id, version: instance.version, url: instance.url });
  return { migrations: migrated.ran, migrationSeconds: migrated.seconds, instance: instance.id, previous: previous?.id, switchMs: Date.now() - switchStarted };
}

/** The old release's production instance, started again when a restart lost it (it is the rollback target). */
export async function ensureWarm(host: UpgradeHost, version: string): Promise<string> {
  const id = instanceId("production", version);
  if (!host.runtime.list().some((i) => i.id === id)) await host.startReady("production", host.releases.ref(version), host.config.database.productDatabase);
  return id;
}

/** Traffic back to the old release's warm instance; the new one drains and stops. Returns when traffic is back. */
export async function trafficBack(host: UpgradeHost, u: Upgrade): Promise<Date> {
  const oldId = await ensureWarm(host, u.fromVersion);
  const old = host.runtime.list().find((i) => i.id === oldId)!;
  if (host.proxy.current?.id !== oldId) {
    await host.proxy.warm(old, { rounds: 1, timeoutMs: 1000 }); // brief: the breach is still serving meanwhile
    host.proxy.switchTo({ id: old.id, version: old.version, url: old.url });
  }
  const at = new Date();
  const newId = instanceId("production", u.toVersion);
  await host.proxy.drain(newId, 30_000).catch(() => undefined);
  await host.runtime.stop(newId);
  return at;
}

/** Undo the schema with the new release's down migrations, back to the old release's schema version. */
export async function downMigrate(host: UpgradeHost, u: Upgrade): Promise<{ ran: string[]; seconds: number; schemaVersion: string }> {
  const fromSchema = host.releases.facts(u.fromVersion).schemaVersion;
  return runReleaseMigrate(host.runtime, host.releases.ref(u.toVersion), productUrl(host), { to: fromSchema, timeoutMs: MIGRATE_TIMEOUT_MS });
}

/** Stop staging instances and drop the staging database. Idempotent. */
export async function teardownStaging(host: UpgradeHost): Promise<void> {
  for (const i of host.runtime.list().filter((x) => x.slot === "staging")) await host.runtime.stop(i.id);
  if (await databaseExists(host.pg, stagingDatabase(host))) await dropDatabase(host.pg, stagingDatabase(host));
}

/** complete: the old instance stops (it drained when the proxy switched), staging goes, old releases are pruned. */
export async function completeStep(host: UpgradeHost, u: Upgrade): Promise<Record<string, unknown>> {
  const oldId = instanceId("production", u.fromVersion);
  await host.proxy.drain(oldId, 30_000).catch(() => undefined);
  await host.runtime.stop(oldId);
  await teardownStaging(host);
  const pruned = host.releases.prune([u.toVersion, u.fromVersion]);
  return { stopped: oldId, pruned };
}
