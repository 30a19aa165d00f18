import { runStep } from "./step-runner.ts";
import type { UpgradeHost } from "./upgrade-host.ts";
import type { Upgrade, UpgradeJournal } from "./upgrade-journal.ts";
import { downMigrate, trafficBack } from "./upgrade-steps.ts";

/** Traffic back to the old release first, then the schema as validation decided. */
export async function rollBack(host: UpgradeHost, journal: UpgradeJournal, u: Upgrade): Promise<void> {
  if (u.kind === "rollback") return undoSchemaForRetained(host, journal, u);
  const mode = u.rollbackMode ?? "down-migrations";
  try {
    await runStep(host, journal, u, "rollback", async (report) => {
      const back = await trafficBack(host, u);
      await journal.setProductionVersion(u.fromVersion, u.id);
      const breachAt = report.rollback?.breachAt;
      report.rollback = {
        reason: "rollback",
        by: "agent",
        ...report.rollback,
        trafficBackAt: back.toISOString(),
        ...(breachAt ? { secondsToOldVersion: (back.getTime() - Date.parse(breachAt)) / 1000 } : {}),
      };
      await journal.update(u.id, { report });
      if (mode === "restore-required") {
        const confirmedBy = report.rollback.restoreConfirmedBy;
        if (!host.settings.autoRestore && !confirmedBy) {
          report.rollback.writeWindow = { from: (u.snapshotAt ?? new Date()).toISOString(), to: new Date().toISOString() };
          return { mode, waiting: "an admin's confirmation to restore the pre-upgrade snapshot" };
        }
        // Resumed after a crash that came after the restore: never restore twice (it would lose writes since).
        if (!report.rollback.restoredAt) {
          await host.restoreProduction(u.snapshotSetId!, confirmedBy ?? "agent");
          report.rollback.restoredAt = new Date().toISOString();
          await journal.update(u.id, { report });
        }
        return { mode, restored: u.snapshotSetId };
      }
      try {
        const down = await downMigrate(host, u.toVersion, u.fromVersion);
        report.migrations = { ...report.migrations, undone: { ran: down.ran, seconds: down.seconds } };
        return { mode, schemaVersion: down.schemaVersion, undone: down.ran };
      } catch (err) {
        if (mode === "traffic-only") return { mode, schemaLeftAhead: (err as Error).message };
        throw err;
      }
    });
  } catch (err) {
    await host.staging.drop().catch(() => undefined); // a full copy of production data must not linger
    await journal.update(u.id, { status: "failed", error: `rollback did not finish: ${(err as Error).message}` });
    await host.audit.append({
      actor: "agent",
      action: "upgrade.failed",
      target: `upgrade:${u.id}`,
      outcome: "failure",
      detail: { error: (err as Error).message },
    });
    return;
  }
  const after = (await journal.get(u.id))!;
  if (mode === "restore-required" && !host.settings.autoRestore && !after.report.rollback?.restoreConfirmedBy) {
    await journal.update(u.id, { status: "restore-pending" });
    return;
  }
  await host.staging.drop();
  await journal.update(after.id, { status: "rolled-back", error: after.report.rollback?.reason ?? null });
  await host.audit.append({
    actor: "agent",
    action: "upgrade.rolled-back",
    target: `upgrade:${u.id}`,
    detail: { mode, reason: after.report.rollback?.reason },
  });
}

/** Manual rollback, after its snapshot: start the retained release on the current schema and switch to it. */
export async function switchToRetained(host: UpgradeHost, journal: UpgradeJournal, u: Upgrade): Promise<void> {
  try {
    await runStep(host, journal, u, "promote", async () => {
      const switched = await host.production.switchTo(u.toVersion);
      await journal.setProductionVersion(u.toVersion, u.id);
      return { instance: switched.instance, previous: switched.previous };
    });
    await journal.update(u.id, { step: "rollback", status: "rolling-back" });
  } catch (err) {
    await journal.update(u.id, { status: "failed", error: (err as Error).message });
  }
}

/** Manual rollback: the newer release's down migrations take the schema back to the retained release's. */
export async function undoSchemaForRetained(host: UpgradeHost, journal: UpgradeJournal, u: Upgrade): Promise<void> {
  try {
    await runStep(host, journal, u, "rollback", async (report) => {
      const down = await downMigrate(host, u.fromVersion, u.toVersion);
      report.migrations = { ...report.migrations, undone: { ran: down.ran, seconds: down.seconds } };
      return { schemaVersion: down.schemaVersion, undone: down.ran };
    });
    await journal.update(u.id, { step: "complete", status: "running" });
  } catch (err) {
    await journal.update(u.id, { status: "failed", error: `the schema could not be taken back: ${(err as Error).message}` });
  }
}
