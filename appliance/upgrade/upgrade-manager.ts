import { CronExpressionParser } from "cron-parser";
import semver from "semver";
import { PlumError } from "../../lib/errors.ts";
import { sleep, withDeadline } from "../../lib/wait.ts";
import type { UpgradeHost } from "./upgrade-host.ts";
import { STEPS, type Promotion, type Step, type Upgrade, type UpgradeJournal, type UpgradeReport } from "./upgrade-journal.ts";
import { rollBack, switchToRetained } from "./rollback-paths.ts";
import { runStep } from "./step-runner.ts";
import { completeStep, promoteStep, snapshotStep, stageStep, validateStep, verifyStep } from "./upgrade-steps.ts";
import { watchSoak } from "./soak-watch.ts";

const PROMOTION_RANK: Record<Promotion, number> = { now: 0, window: 1, approval: 2 };
const BEFORE_PROMOTE: Step[] = ["verify", "snapshot", "stage", "validate"];

/** Whether the maintenance window (opens at each cron time, stays open `minutes`) is open at `now`. */
export function windowOpen(cron: string, minutes: number, now = new Date()): boolean {
  const opened = CronExpressionParser.parse(cron, { tz: "UTC", currentDate: new Date(now.getTime() + 1000) })
    .prev()
    .toDate();
  return now.getTime() - opened.getTime() < minutes * 60_000;
}

/**
 * The upgrade state machine: verify → snapshot → stage → validate → (wait for promotion) → promote → soak →
 * complete, with rollback from promote or soak. Every step is journaled (started, then done/failed/undone) in
 * plum_ops and written to the audit log, so a restarted agent resumes (promote, soak, rollback, complete) or
 * undoes (anything before promote) an interrupted upgrade.
 */
/** How an upgrade may end that a vendor will want to see. */
const UNSUCCESSFUL: Upgrade["status"][] = ["failed", "aborted", "rolled-back"];

export class UpgradeManager {
  private driving?: Promise<void>;
  private drivingId?: number;
  private queued?: number;
  private abortRequested = false;
  private stopped = false;
  private soak?: { stop(): void };

  constructor(
    private readonly host: UpgradeHost,
    readonly journal: UpgradeJournal,
  ) {}

  /** The least promotion plum.yaml allows (the console offers only the choices it accepts). */
  get configuredPromotion(): Promotion {
    return this.host.settings.promotion;
  }

  /** Where the bundles of unsuccessful upgrades are (the console's download serves this folder only). */
  get supportDir(): string {
    return this.host.supportDir;
  }

  /** The version production runs: the pointer in plum_ops, or the installed release on an appliance never upgraded. */
  async productionVersion(installed: string): Promise<string> {
    return (await this.journal.productionVersion()) ?? installed;
  }

  async start(input: { version: string; promotion?: Promotion; actor: string; installed: string }): Promise<Upgrade> {
    const configured = this.host.settings.promotion;
    const promotion = input.promotion ?? configured;
    if (PROMOTION_RANK[promotion] < PROMOTION_RANK[configured]) {
      throw new PlumError(`promotion "${promotion}" is not allowed here: upgrades.promotion in plum.yaml requires "${configured}"`, {
        hint: configured === "approval" ? "start it with --approve, then have an admin approve it" : "start it with --window (or --approve)",
      });
    }
    const from = await this.productionVersion(input.installed);
    this.host.releases.ref(input.version); // throws with a hint when the release was not imported
    if (!semver.gt(input.version, from))
      throw new PlumError(`${input.version} is not newer than ${from}, which serves production`, {
        hint: "to go back to an older release use `plumctl rollback --to VERSION`",
      });
    const u = await this.journal.create({ kind: "upgrade", fromVersion: from, toVersion: input.version, promotion, requestedBy: input.actor });
    await this.host.audit.append({ actor: input.actor, action: "upgrade.start", target: `upgrade:${u.id}`, detail: { from, to: input.version, promotion } });
    this.abortRequested = false;
    this.drive(u.id);
    return u;
  }

  /** Go back to a retained release: the upgrade being soaked, or (with none) the previous release or `to`. */
  async rollback(input: { to?: string; actor: string; installed: string }): Promise<Upgrade> {
    const active = await this.journal.active();
    if (active) {
      if (active.kind === "upgrade" && (active.step === "soak" || active.step === "promote") && active.status !== "waiting") {
        await this.beginRollback(active, `manual rollback by ${input.actor}`, input.actor);
        return (await this.journal.get(active.id))!;
      }
      throw new PlumError(`upgrade ${active.id} is ${active.status} at ${active.step}: nothing to roll back to yet`, {
        hint: active.status === "waiting" || BEFORE_PROMOTE.includes(active.step) ? "abort it instead: `plumctl upgrade abort`" : "wait for it to finish",
      });
    }
    const from = await this.productionVersion(input.installed);
    const to = input.to ?? (await this.journal.history(100)).find((u) => u.status === "completed" && u.toVersion === from)?.fromVersion;
    if (!to)
      throw new PlumError(`there is no earlier release to roll back to from ${from}`, { hint: "name one with --to VERSION (see `plumctl release list`)" });
    if (!semver.lt(to, from))
      throw new PlumError(`${to} is not older than ${from}, which serves production`, { hint: `to go forward use \`plumctl upgrade start ${to}\`` });
    this.host.releases.ref(to);
    const u = await this.journal.create({ kind: "rollback", fromVersion: from, toVersion: to, promotion: "now", requestedBy: input.actor, step: "snapshot" });
    await this.host.audit.append({ actor: input.actor, action: "rollback.start", target: `upgrade:${u.id}`, detail: { from, to } });
    this.drive(u.id);
    return u;
  }

  async approve(actor: string): Promise<Upgrade> {
    const u = await this.journal.active();
    if (!u || u.kind !== "upgrade" || BEFORE_PROMOTE.concat("promote").indexOf(u.step) < 0 || u.status === "soaking")
      throw new PlumError("there is no upgrade waiting for approval", { hint: "see `plumctl upgrade status`" });
    const updated = await this.journal.update(u.id, { approvedBy: actor, approvedAt: new Date() });
    await this.journal.note(u.id, u.step, "note", { approvedBy: actor });
    await this.host.audit.append({ actor, action: "upgrade.approve", target: `upgrade:${u.id}` });
    return updated;
  }

  /** Stop an upgrade before promotion: staging torn down, production untouched. */
  async abort(actor: string): Promise<Upgrade> {
    const u = await this.journal.active();
    if (!u || !(u.status === "waiting" || BEFORE_PROMOTE.includes(u.step)))
      throw new PlumError(u ? `upgrade ${u.id} is past validation (${u.step}): roll it back instead` : "there is no upgrade to abort", {
        hint: u ? "`plumctl rollback`" : undefined,
      });
    this.abortRequested = true;
    await this.host.audit.append({ actor, action: "upgrade.abort", target: `upgrade:${u.id}` });
    // A running step finishes first (the driver then undoes it); an upgrade not being driven is undone now (the
    // driver may be busy with another's support bundle meanwhile).
    if (this.drivingId !== u.id) {
      await this.finishAborted(u, `aborted by ${actor}`);
      this.drive(u.id); // nothing left to run: the driver only writes its support bundle
    }
    return (await this.journal.get(u.id))!;
  }

  /** An admin accepts losing the write window: the pre-upgrade snapshot is restored over production. */
  async confirmRestore(actor: string): Promise<Upgrade> {
    const u = await this.journal.active();
    if (!u || u.status !== "restore-pending") throw new PlumError("no rollback is waiting for a restore confirmation");
    await this.journal.update(u.id, {
      status: "rolling-back",
      report: { ...u.report, rollback: { reason: "rollback", by: "agent", ...u.report.rollback, restoreConfirmedBy: actor } },
    });
    await this.host.audit.append({
      actor,
      action: "upgrade.restore-confirmed",
      target: `upgrade:${u.id}`,
      detail: { writeWindow: u.report.rollback?.writeWindow },
    });
    this.drive(u.id);
    return (await this.journal.get(u.id))!;
  }

  /** After an agent restart: undo what was before promotion, resume the rest. Production already serves the pointer's release. */
  async resume(): Promise<string | undefined> {
    const u = await this.journal.active();
    // An agent upgrade is the agent's own (appliance/agent-upgrade): its trial ends at the new agent's start.
    if (!u || u.kind === "agent") return undefined;
    if (u.status === "running" && BEFORE_PROMOTE.includes(u.step)) {
      await this.finishAborted(u, `interrupted by an agent restart during ${u.step}: undone, production untouched; start it again when ready`);
      // Its support bundle is written by the driver, in the background: the boot does not wait for it, stop() does.
      this.drive(u.id);
      return `upgrade ${u.id} undone (it was at ${u.step})`;
    }
    if (u.status === "restore-pending") return `upgrade ${u.id} waits for a restore confirmation`;
    this.drive(u.id);
    return `upgrade ${u.id} resumed at ${u.step}`;
  }

  /**
   * At boot, when the release the pointer names cannot start: if an unfinished upgrade switched to it, point
   * production back at the release it came from (still installed) so something serves; the resumed soak then
   * sees the new release down and rolls back. Returns the version to start, or undefined (nothing to fall back to).
   */
  async fallBack(reason: string): Promise<string | undefined> {
    const u = await this.journal.active();
    if (!u || u.kind !== "upgrade" || (await this.journal.productionVersion()) !== u.toVersion) return undefined;
    await this.journal.setProductionVersion(u.fromVersion, u.id);
    await this.journal.note(u.id, u.step, "note", { fellBackTo: u.fromVersion, reason });
    await this.host.audit.append({
      actor: "agent",
      action: "upgrade.fallback",
      target: `upgrade:${u.id}`,
      outcome: "failure",
      detail: { to: u.fromVersion, reason },
    });
    return u.fromVersion;
  }

  /** At boot: serve the release the pointer names, or (it cannot start, see `fallBack`) the one it came from. */
  async serveAtBoot(installed: string, serve: (version: string) => Promise<unknown>): Promise<void> {
    try {
      await serve(await this.productionVersion(installed));
    } catch (err) {
      const previous = await this.fallBack((err as Error).message);
      if (!previous) throw err;
      this.host.log.error({ err, previous }, "the promoted release does not start: serving the previous one");
      await serve(previous);
    }
  }

  /** Agent stopping: leave the journal as it is (a restart resumes), end the loops. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.soak?.stop();
    // A step in progress (a restore, a suite) may take long: the journal lets a restart resume or undo it.
    if (this.driving)
      await withDeadline("the upgrade step in progress to end", 30_000, this.driving).catch((err) =>
        this.host.log.warn({ err: (err as Error).message }, "stopping with an upgrade step in progress"),
      );
  }

  private drive(id: number): void {
    if (this.driving) {
      this.queued = id; // the driver is winding down (or busy with it already): drive it next
      return;
    }
    this.drivingId = id;
    this.driving = this.loop(id).finally(() => {
      this.driving = this.drivingId = undefined;
      const next = this.queued;
      this.queued = undefined;
      if (next !== undefined && !this.stopped) this.drive(next);
    });
  }

  private async loop(id: number): Promise<void> {
    try {
      await this.steps(id);
      await this.bundleIfUnsuccessful(id);
    } catch (err) {
      // Nothing may leave an upgrade unfinished for ever (it holds the lock): an unexpected error ends it as failed.
      this.host.log.error({ err, upgrade: id }, "upgrade driver stopped with an error");
      await this.host.staging.drop().catch(() => undefined);
      await this.journal.note(id, (await this.journal.get(id))?.step ?? "verify", "failed", { error: (err as Error).message }).catch(() => undefined);
      await this.journal.update(id, { status: "failed", error: `stopped by an unexpected error: ${(err as Error).message}` }).catch(() => undefined);
      await this.host.audit
        .append({ actor: "agent", action: "upgrade.failed", target: `upgrade:${id}`, outcome: "failure", detail: { error: (err as Error).message } })
        .catch(() => undefined);
      await this.bundleIfUnsuccessful(id).catch(() => undefined);
    }
  }

  /**
   * An upgrade that ended failed, aborted or rolled back leaves a support bundle for the vendor, written after its
   * last state so the bundle holds the whole report; its path goes into the report (the console links it). A
   * bundle that cannot be written is said in the report; it never changes how the upgrade ended.
   */
  private async bundleIfUnsuccessful(id: number): Promise<void> {
    const u = await this.journal.get(id);
    if (!u || !UNSUCCESSFUL.includes(u.status) || u.report.supportBundle) return;
    const writtenAt = () => new Date().toISOString();
    let supportBundle: NonNullable<Upgrade["report"]["supportBundle"]>;
    try {
      supportBundle = { file: await this.host.supportBundle(id, u.status), writtenAt: writtenAt() };
    } catch (err) {
      this.host.log.error({ err, upgrade: id }, "the support bundle of an unsuccessful upgrade could not be written");
      supportBundle = { error: (err as Error).message, writtenAt: writtenAt() };
    }
    const latest = (await this.journal.get(id)) ?? u;
    await this.journal.update(id, { report: { ...latest.report, supportBundle } });
    await this.host.audit.append({
      actor: "agent",
      action: "upgrade.support-bundle",
      target: `upgrade:${id}`,
      outcome: "file" in supportBundle ? "success" : "failure",
      detail: supportBundle,
    });
  }

  private async steps(id: number): Promise<void> {
    while (!this.stopped) {
      const u = (await this.journal.get(id))!;
      if (u.finishedAt || u.status === "restore-pending") return;
      if (u.status === "rolling-back") await rollBack(this.host, this.journal, u);
      else if (BEFORE_PROMOTE.includes(u.step)) await this.runBeforePromote(u);
      else if (u.step === "promote") await this.runPromote(u);
      else if (u.step === "soak") await this.runSoak(u);
      else if (u.step === "complete") await this.runComplete(u);
      else if (u.step === "rollback") await rollBack(this.host, this.journal, u);
    }
  }

  private async runBeforePromote(u: Upgrade): Promise<void> {
    try {
      const steps = u.kind === "rollback" ? ["snapshot" as const] : BEFORE_PROMOTE.slice(BEFORE_PROMOTE.indexOf(u.step));
      for (const step of steps) {
        if (this.stopped) return; // the agent is stopping: a restart undoes what was before promote
        if (this.abortRequested) return this.finishAborted(u, "aborted before promotion");
        if (step === "verify") await runStep(this.host, this.journal, u, step, () => verifyStep(this.host, u));
        if (step === "snapshot") {
          const snap = await runStep(this.host, this.journal, u, step, () => snapshotStep(this.host, u));
          u = await this.journal.update(u.id, { snapshotSetId: snap.setId, snapshotAt: snap.takenAt });
        }
        if (step === "stage") await runStep(this.host, this.journal, u, step, (r) => stageStep(this.host, u, r));
        if (step === "validate") {
          const { hold, ...decided } = await runStep(this.host, this.journal, u, step, (r) => validateStep(this.host, u, r));
          u = await this.journal.update(u.id, { rollbackMode: decided.mode, report: { ...u.report, rollbackMode: decided } });
          if (hold && u.promotion !== "approval") {
            // What the gate could not judge is for an admin to read: no promotion without one, whatever was asked.
            u = await this.journal.update(u.id, { promotion: "approval" });
            await this.journal.note(u.id, step, "note", { promotion: "approval", why: hold });
            await this.host.audit.append({ actor: "agent", action: "upgrade.hold", target: `upgrade:${u.id}`, detail: { promotion: "approval", why: hold } });
          }
        }
      }
      if (this.abortRequested) return this.finishAborted(u, "aborted before promotion");
      await this.journal.update(u.id, { step: "promote", status: u.promotion === "now" ? "running" : "waiting" });
    } catch (err) {
      await this.finishAborted(u, (err as Error).message);
    }
  }

  private async finishAborted(stale: Upgrade, why: string): Promise<void> {
    const u = (await this.journal.get(stale.id)) ?? stale; // the step it stopped at: runStep moved it on since `stale` was read
    await this.host.staging.drop().catch((err) => this.host.log.error({ err }, "tearing down staging failed"));
    await this.journal.note(u.id, u.step, "undone", { why });
    await this.journal.update(u.id, { status: "aborted", error: why });
    await this.host.audit.append({ actor: "agent", action: "upgrade.aborted", target: `upgrade:${u.id}`, outcome: "failure", detail: { why, step: u.step } });
    this.abortRequested = false;
  }

  /** Wait for the promotion the upgrade asked for; false when it was aborted (or the agent stops). */
  private async promotionGate(u: Upgrade): Promise<boolean> {
    while (!this.stopped) {
      const { window } = this.host.settings; // read each time: a reloaded plum.yaml moves the window
      if (this.abortRequested) {
        await this.finishAborted(u, "aborted while waiting for promotion");
        return false;
      }
      const fresh = (await this.journal.get(u.id))!;
      if (fresh.promotion === "now" || fresh.status === "running") return true;
      if (fresh.promotion === "approval" && fresh.approvedBy) return true;
      if (fresh.promotion === "window" && windowOpen(window.cron, window.minutes)) {
        await this.journal.update(u.id, { report: { ...fresh.report, promotion: { waitedFor: "window", windowOpenedAt: new Date().toISOString() } } });
        return true;
      }
      await sleep(1000);
    }
    return false;
  }

  private async runPromote(u: Upgrade): Promise<void> {
    if (u.kind === "rollback") return switchToRetained(this.host, this.journal, u);
    if (this.abortRequested) return this.finishAborted(u, "aborted before promotion");
    if (u.status === "waiting" && !(await this.promotionGate(u))) return;
    u = (await this.journal.get(u.id))!;
    if (u.approvedBy) u.report = { ...u.report, promotion: { waitedFor: u.promotion, approvedBy: u.approvedBy } };
    await this.journal.update(u.id, { status: "running", report: u.report });
    try {
      await runStep(this.host, this.journal, u, "promote", (r) => promoteStep(this.host, u, r));
    } catch (err) {
      return this.beginRollback(u, `promotion failed: ${(err as Error).message}`, "agent");
    }
    await this.journal.transaction(async (t) => {
      await this.journal.setProductionVersion(u.toVersion, u.id, t); // the new release serves now
      await this.journal.updateIf(u.id, ["running"], { step: "soak", status: "soaking" }, t); // unless a rollback came meanwhile
    });
  }

  private async runSoak(u: Upgrade): Promise<void> {
    const t = this.host.settings;
    const result = await runStep(this.host, this.journal, u, "soak", async (report) => {
      await this.host.production.ensureWarm(u.fromVersion);
      const watch = watchSoak({
        onAnswer: (listener) => this.host.production.onAnswer(listener),
        version: u.toVersion,
        health: () => this.host.production.health(u.toVersion),
        thresholds: {
          seconds: t.soakSeconds,
          maxErrorRatio: t.maxErrorRatio,
          maxP99Ms: t.maxP99Ms,
          minRequests: t.minSoakRequests,
          unhealthyChecks: t.unhealthyChecks,
        },
      });
      this.soak = watch;
      if ((await this.journal.get(u.id))!.status === "rolling-back") watch.stop(); // asked for before the watch began
      const r = await watch.result;
      this.soak = undefined;
      report.soak = { seconds: r.seconds, requests: r.requests, errors5xx: r.errors5xx, p99Ms: r.p99Ms, healthFailures: r.healthFailures, breach: r.breach };
      return r;
    });
    if (this.stopped) return;
    if (result.breach) return this.beginRollback(u, `soak breach: ${result.breach}`, "agent", result.breachAt);
    await this.journal.updateIf(u.id, ["soaking"], { step: "complete" }); // a manual rollback may have come first
  }

  private async runComplete(u: Upgrade): Promise<void> {
    await runStep(this.host, this.journal, u, "complete", () => completeStep(this.host, u));
    await this.journal.update(u.id, { status: "completed" });
    await this.host.audit.append({
      actor: "agent",
      action: u.kind === "rollback" ? "rollback.completed" : "upgrade.completed",
      target: `upgrade:${u.id}`,
      detail: { from: u.fromVersion, to: u.toVersion },
    });
  }

  private async beginRollback(u: Upgrade, reason: string, by: string, breachAt?: Date): Promise<void> {
    const fresh = (await this.journal.get(u.id))!;
    const report: UpgradeReport = { ...fresh.report, rollback: { reason, by, ...(breachAt ? { breachAt: breachAt.toISOString() } : {}) } };
    await this.journal.update(u.id, { status: "rolling-back", report });
    // Only after the status is written: a soak watch that began meanwhile either read "rolling-back" and stopped
    // itself, or is in `this.soak` now. Stopping first left a window where a watch began and ran its full length.
    this.soak?.stop();
    await this.host.audit.append({ actor: by, action: "upgrade.rollback", target: `upgrade:${u.id}`, detail: { reason } });
    if (this.drivingId !== u.id) this.drive(u.id);
  }

  async status(): Promise<{ active?: Upgrade; latest?: Upgrade; journal: Awaited<ReturnType<UpgradeJournal["entries"]>> }> {
    const active = await this.journal.active();
    const latest = active ?? (await this.journal.latest());
    return { active, latest, journal: latest ? await this.journal.entries(latest.id) : [] };
  }
}

export { STEPS };
