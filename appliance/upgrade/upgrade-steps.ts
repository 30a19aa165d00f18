import { PlumError } from "../../lib/errors.ts";
import type { UpgradeHost } from "./upgrade-host.ts";
import type { RollbackMode, Upgrade, UpgradeReport } from "./upgrade-journal.ts";

const MIB = 2 ** 20;

/** verify: the stored bundle is still the vendor's, the path is allowed, there is room for a staging copy. */
export async function verifyStep(host: UpgradeHost, u: Upgrade): Promise<Record<string, unknown>> {
  const checks = await host.releases.recheck(u.toVersion, u.fromVersion);
  const { databaseBytes, freeBytes } = await host.disk();
  if (freeBytes === undefined) {
    checks.push(
      `disk: the product database is ${Math.round(databaseBytes / MIB)} MiB; your PostgreSQL server needs as much free for the staging copy (not measurable from here)`,
    );
    return { checks };
  }
  const needed = 2 * databaseBytes + 200 * MIB;
  if (freeBytes < needed) {
    throw new PlumError(
      `not enough free disk for a staging copy: ${Math.round(freeBytes / MIB)} MiB free for the database, ${Math.round(needed / MIB)} MiB needed (twice the ${Math.round(databaseBytes / MIB)} MiB product database, plus 200 MiB)`,
      { hint: "free space on the file system holding PLUM_HOME/pgdata, then start the upgrade again" },
    );
  }
  checks.push(`disk: ${Math.round(freeBytes / MIB)} MiB free, ${Math.round(needed / MIB)} MiB needed for a staging copy`);
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
  await host.staging.drop();
  const restored = await host.staging.restore(u.snapshotSetId, `upgrade:${u.id}`);
  if (restored.failed.length > 0) throw new PlumError(`the pre-upgrade snapshot did not restore intact into staging: ${restored.failed.join("; ")}`);
  const migrated = await host.commands.migrate(u.toVersion, "staging");
  report.migrations = { ...report.migrations, staging: { ran: migrated.ran, seconds: migrated.seconds } };
  return { restoredChecks: restored.checks, migrations: migrated.ran, migrationSeconds: migrated.seconds, schemaVersion: migrated.schemaVersion };
}

/** Run a release's suites against its own instance on staging; the instance stops again whatever happens. */
async function validateOnStaging(host: UpgradeHost, version: string, suites: string[]) {
  const instance = await host.staging.start(version);
  try {
    return await host.commands.validate(version, instance.url, "staging", suites);
  } finally {
    await host.staging.stop(version);
  }
}

/**
 * validate: the new release's suites against its staging instance, then the current release's smoke suite on the
 * migrated staging schema, which decides how a rollback can be done. Throws (abort) when the new release fails.
 */
export async function validateStep(host: UpgradeHost, u: Upgrade, report: UpgradeReport): Promise<{ mode: RollbackMode; why: string }> {
  const releaseOutcome = await validateOnStaging(host, u.toVersion, host.releases.facts(u.toVersion).suites);
  report.suites = { ...report.suites, release: releaseOutcome.reports };
  if (!releaseOutcome.passed)
    throw new PlumError(`${u.toVersion} failed validation on staging: ${releaseOutcome.failures.join("; ")}`, {
      hint: "production was not touched; the report on the Upgrade page lists every check",
    });

  const fromSchema = host.releases.facts(u.fromVersion).schemaVersion;
  const smoke = await validateOnStaging(host, u.fromVersion, ["smoke"]).catch((err: Error) => ({
    passed: false,
    reports: [],
    failures: [`${u.fromVersion} did not start on the new schema: ${err.message}`],
    seconds: 0,
  }));
  report.suites = { ...report.suites, currentSmoke: smoke.reports };
  if (smoke.passed) return { mode: "traffic-only", why: `${u.fromVersion}'s smoke suite passed on ${u.toVersion}'s schema: traffic can go back at once` };
  try {
    const down = await host.commands.migrate(u.toVersion, "staging", { to: fromSchema });
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
 * promote: migrate production with the new release, then give it production (started, health-gated, warmed,
 * switched). The old instance keeps running (warm) for the soak. Idempotent: a resumed promote skips what is done.
 */
export async function promoteStep(host: UpgradeHost, u: Upgrade, report: UpgradeReport): Promise<Record<string, unknown>> {
  if (host.production.current()?.version === u.toVersion) return { alreadySwitched: true };
  const migrated = await host.commands.migrate(u.toVersion, "production");
  report.migrations = { ...report.migrations, production: { ran: migrated.ran, seconds: migrated.seconds } };
  const switched = await host.production.switchTo(u.toVersion, { keepPrevious: true });
  return {
    migrations: migrated.ran,
    migrationSeconds: migrated.seconds,
    instance: switched.instance,
    previous: switched.previous,
    switchMs: switched.switchMs,
  };
}

/** Traffic back to the old release's warm instance; the new one drains and stops. Returns when traffic went back. */
export async function trafficBack(host: UpgradeHost, u: Upgrade): Promise<Date> {
  const back = await host.production.switchTo(u.fromVersion, { brief: true });
  await host.production.stop(u.toVersion);
  return back.switchedAt;
}

/** Undo the schema with the newer release's down migrations, back to the older release's schema version. */
export function downMigrate(host: UpgradeHost, newer: string, older: string): Promise<{ ran: string[]; seconds: number; schemaVersion: string }> {
  return host.commands.migrate(newer, "production", { to: host.releases.facts(older).schemaVersion });
}

/** complete: the old instance stops (it drained when the proxy switched), staging goes, old releases are pruned. */
export async function completeStep(host: UpgradeHost, u: Upgrade): Promise<Record<string, unknown>> {
  await host.production.stop(u.fromVersion);
  await host.staging.drop();
  const pruned = host.releases.prune([u.toVersion, u.fromVersion]);
  return { stopped: `production@${u.fromVersion}`, pruned };
}
