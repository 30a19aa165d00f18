import { PlumError } from "../../lib/errors.ts";
import { fingerprintSummary } from "../../lib/db/table-fingerprints.ts";
import { declarationsFor, describeUndeclared, judge, unreadFor, withRowCounts } from "./data-gate.ts";
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

/** What stage drives of the host (the integration tests give these over real databases). */
export type StageHost = { staging: Pick<UpgradeHost["staging"], "drop" | "restore" | "fingerprint">; commands: Pick<UpgradeHost["commands"], "migrate"> };
/** What the data-diff gate asks of the host. */
export type GateHost = Pick<UpgradeHost, "log"> & { releases: Pick<UpgradeHost["releases"], "facts">; staging: Pick<UpgradeHost["staging"], "rowDifferences"> };

/**
 * stage: the snapshot restored into the staging database (which proves it restores), then the new migrations
 * there, with staging's fingerprints taken before and after them for validate's data-diff gate. Nothing but the
 * migrations runs on staging between the two (no instance is started before validate), so any difference is
 * theirs. The fingerprint before is the one the restore verified against the snapshot's manifest, when it had one.
 */
export async function stageStep(host: StageHost, u: Upgrade, report: UpgradeReport): Promise<Record<string, unknown>> {
  if (!u.snapshotSetId) throw new PlumError("the upgrade has no snapshot to stage from");
  await host.staging.drop();
  const restored = await host.staging.restore(u.snapshotSetId, `upgrade:${u.id}`);
  if (restored.failed.length > 0) throw new PlumError(`the pre-upgrade snapshot did not restore intact into staging: ${restored.failed.join("; ")}`);
  const before = restored.fingerprint
    ? { ...restored.fingerprint, from: "restore" as const }
    : { ...(await host.staging.fingerprint()), from: "staging" as const };
  const migrated = await host.commands.migrate(u.toVersion, "staging");
  report.migrations = { ...report.migrations, staging: { ran: migrated.ran, seconds: migrated.seconds } };
  const after = await host.staging.fingerprint();
  report.dataGate = {
    fingerprints: { before: before.fingerprint, after: after.fingerprint },
    before: { from: before.from, ...fingerprintSummary(before.fingerprint), seconds: before.seconds },
    after: { ...fingerprintSummary(after.fingerprint), seconds: after.seconds },
  };
  return {
    restoredChecks: restored.checks,
    migrations: migrated.ran,
    migrationSeconds: migrated.seconds,
    schemaVersion: migrated.schemaVersion,
    fingerprintSeconds: { before: before.seconds, after: after.seconds },
  };
}

const LISTED = 8;

/**
 * The data-diff gate, first thing in validate (before any suite writes to staging): stage's two fingerprints
 * judged against the declarations of the migrations that ran. An undeclared difference throws (the upgrade is
 * aborted, production untouched), naming table, column, how many rows and a few keys, which a row-by-row
 * comparison with the snapshot finds on this path only. A bundle built before declarations is not refused:
 * what was measured is shown and the promotion waits for an admin (`hold`). Resumes never skip it: an upgrade
 * interrupted before promote is undone, and one that reaches validate without stage's fingerprints is refused.
 */
export async function dataGateCheck(host: GateHost, u: Upgrade, report: UpgradeReport): Promise<{ hold?: string }> {
  const gate = report.dataGate;
  if (!gate?.fingerprints)
    throw new PlumError("staging has no fingerprints from the stage step: the data-diff gate cannot judge the migrations", {
      hint: "start the upgrade again (stage fingerprints staging before and after the migrations)",
    });
  const { before, after } = gate.fingerprints;
  const ran = report.migrations?.staging?.ran ?? [];
  const declarations = host.releases.facts(u.toVersion).dataChanges;
  const judged = judge(before, after, declarations ? declarationsFor(declarations, ran) : []);
  let undeclared = judged.undeclared;
  if (undeclared.length > 0 && judged.comparisons.length > 0 && u.snapshotSetId) {
    const started = Date.now();
    const compared = await host.staging
      .rowDifferences(u.snapshotSetId, judged.comparisons, `upgrade:${u.id}`)
      .catch((err: Error) => judged.comparisons.map((c) => ({ table: c.after.table, error: err.message })));
    undeclared = withRowCounts(undeclared, compared);
    gate.rowsSeconds = (Date.now() - started) / 1000;
    for (const c of compared) if (c.error) host.log.warn({ table: c.table, err: c.error }, "data-diff gate: rows could not be compared one by one");
  }
  delete gate.fingerprints; // judged: the findings below are what the report keeps
  Object.assign(gate, {
    declaredBy: declarations ? "manifest" : "none",
    migrations: ran,
    declared: judged.declared,
    undeclared,
    unread: declarations ? unreadFor(declarations, ran) : [],
    verdict: undeclared.length === 0 ? "passed" : declarations ? "refused" : "held-for-approval",
  });
  if (undeclared.length === 0) return {};
  const listed =
    undeclared.slice(0, LISTED).map(describeUndeclared).join("; ") + (undeclared.length > LISTED ? `; and ${undeclared.length - LISTED} more` : "");
  if (!declarations) {
    gate.hold = `${u.toVersion}'s bundle declares no data changes (built before declarations); its migrations changed: ${listed}. An admin approves the promotion after reading them`;
    return { hold: gate.hold };
  }
  throw new PlumError(`${u.toVersion}'s migrations changed data they do not declare: ${listed}`, {
    hint: "production was not touched; the report on the Upgrade page lists every difference. If the change is intended, the release must declare it (a migration exports dataChanges) and be built again",
  });
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
 * validate: the data-diff gate, then the new release's suites against its staging instance, then the current
 * release's smoke suite on the migrated staging schema, which decides how a rollback can be done. Throws (abort)
 * when the gate refuses or the new release fails; `hold`: the promotion must wait for an admin's approval.
 */
export async function validateStep(host: UpgradeHost, u: Upgrade, report: UpgradeReport): Promise<{ mode: RollbackMode; why: string; hold?: string }> {
  const { hold } = await dataGateCheck(host, u, report);
  const decided = await validateSuites(host, u, report);
  return hold ? { ...decided, hold } : decided;
}

async function validateSuites(host: UpgradeHost, u: Upgrade, report: UpgradeReport): Promise<{ mode: RollbackMode; why: string }> {
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
  const pruned = await host.releases.prune([u.toVersion, u.fromVersion]);
  return { stopped: `production@${u.fromVersion}`, pruned };
}
