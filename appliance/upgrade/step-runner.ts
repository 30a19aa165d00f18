import type { UpgradeHost } from "./upgrade-host.ts";
import type { Step, Upgrade, UpgradeJournal, UpgradeReport } from "./upgrade-journal.ts";

/**
 * Run one step of an upgrade: journal it (started, then done or failed), write the audit log, and keep its
 * timings and result in the report. A crash after "started" leaves the step for `resume()` to finish or undo.
 */
export async function runStep<T>(host: UpgradeHost, journal: UpgradeJournal, u: Upgrade, step: Step, work: (report: UpgradeReport) => Promise<T>): Promise<T> {
  const report: UpgradeReport = { ...u.report, steps: { ...u.report.steps, [step]: { startedAt: new Date().toISOString() } } };
  await journal.update(u.id, { step, report });
  await journal.note(u.id, step, "started");
  await host.audit.append({
    actor: "agent",
    action: `upgrade.${step}`,
    target: `upgrade:${u.id}`,
    detail: { phase: "started", from: u.fromVersion, to: u.toVersion },
  });
  const started = Date.now();
  const finish = async (outcome: "done" | "failed", detail: unknown) => {
    report.steps[step] = { ...report.steps[step], finishedAt: new Date().toISOString(), seconds: (Date.now() - started) / 1000, outcome, detail };
    // A rollback asked for meanwhile (console, CLI) keeps its reason: the journal merges it into this report.
    u.report = (await journal.update(u.id, { report })).report;
    await journal.note(u.id, step, outcome, { detail: detail ?? null });
    await host.audit.append({
      actor: "agent",
      action: `upgrade.${step}`,
      target: `upgrade:${u.id}`,
      outcome: outcome === "done" ? "success" : "failure",
      detail: { phase: outcome },
    });
  };
  try {
    const result = await work(report);
    await finish("done", result);
    return result;
  } catch (err) {
    await finish("failed", { error: (err as Error).message });
    throw err;
  }
}
