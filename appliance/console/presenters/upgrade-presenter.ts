import path from "node:path";
import { describeChange } from "../../../lib/db/data-changes.ts";
import { describeUndeclared } from "../../upgrade/data-gate.ts";
import { FINISHED, STEPS, type Step, type Upgrade, type UpgradeJournal } from "../../upgrade/upgrade-journal.ts";

// The steps an upgrade can still be aborted at (the manager's own rule: nothing has touched production yet).
const BEFORE_PROMOTE: Step[] = ["verify", "snapshot", "stage", "validate"];

const STATUS_TEXT: Record<Upgrade["status"], string> = {
  running: "running",
  waiting: "waiting for promotion",
  soaking: "soaking (watched before the old release stops)",
  "rolling-back": "rolling back",
  "restore-pending": "rolled back to the old release; the schema needs a restore an admin must confirm",
  completed: "completed",
  aborted: "aborted (production untouched)",
  "rolled-back": "rolled back",
  failed: "failed",
};

const WAITING_FOR: Record<Upgrade["promotion"], string> = {
  now: "waiting",
  window: "waiting for the maintenance window",
  approval: "waiting for an admin's approval",
};

type JournalEntry = Awaited<ReturnType<UpgradeJournal["entries"]>>[number];
interface SuiteReport {
  suite: string;
  passed: boolean;
  checks: Array<{ name: string; passed: boolean; detail?: string }>;
}

// The report keeps times as ISO strings (it is JSON); the pages show dates one way.
const asDate = (iso: string | undefined) => (iso ? new Date(iso) : undefined);
const seconds = (n: number | undefined | null) => (typeof n === "number" ? `${n.toFixed(1)} s` : "—");

/** Which steps this upgrade runs: a rollback to a retained release skips validation; rollback only runs when needed. */
function plannedSteps(u: Upgrade): Step[] {
  if (u.kind === "rollback") return ["snapshot", "promote", "rollback", "complete"];
  const rolledBack = ["rolling-back", "restore-pending", "rolled-back"].includes(u.status) || !!u.report.steps?.rollback;
  return STEPS.filter((s) => s !== "rollback" || rolledBack);
}

/** The step list: outcome and time of each step, as the Upgrade page and its live script show it. */
export function presentSteps(u: Upgrade) {
  const finished = FINISHED.includes(u.status);
  const planned = plannedSteps(u);
  return STEPS.map((name) => {
    const r = u.report.steps?.[name];
    let state: string;
    if (r?.outcome) state = r.outcome;
    else if (r) state = finished ? "interrupted" : "running";
    else if (!planned.includes(name)) state = "not-needed";
    else if (u.step === name && u.status === "waiting") state = "waiting";
    else state = finished ? "skipped" : "pending";
    const text = state === "waiting" ? WAITING_FOR[u.promotion] : state === "not-needed" ? "not needed" : state;
    const error = r?.outcome === "failed" ? (r.detail as { error?: string } | undefined)?.error : undefined;
    return { name, state, text, seconds: seconds(r?.seconds), error };
  });
}

/** Suite reports as stored by the validate step; anything else (an older report shape) is left out, not guessed. */
function suiteReports(value: unknown): SuiteReport[] {
  if (!Array.isArray(value)) return [];
  return value.filter((r): r is SuiteReport => !!r && typeof r.suite === "string" && Array.isArray(r.checks));
}

function presentSuites(u: Upgrade) {
  const groups = [
    { title: `${u.toVersion}'s suites on staging`, reports: suiteReports(u.report.suites?.release) },
    { title: `${u.fromVersion}'s smoke suite on the new schema (decides the rollback mode)`, reports: suiteReports(u.report.suites?.currentSmoke) },
  ];
  return groups
    .filter((g) => g.reports.length > 0)
    .map((g) => ({
      title: g.title,
      suites: g.reports.map((r) => ({
        suite: r.suite,
        passed: r.passed,
        total: r.checks.length,
        checks: r.checks,
        failing: r.checks.filter((c) => !c.passed),
      })),
    }));
}

function presentMigrations(u: Upgrade) {
  const m = u.report.migrations ?? {};
  return (["staging", "production", "undone"] as const)
    .filter((where) => m[where])
    .map((where) => ({ where, count: m[where]!.ran.length, ran: m[where]!.ran.join(", ") || "none", seconds: seconds(m[where]!.seconds) }));
}

const GATE_VERDICT = {
  passed: { text: "passed: every difference the migrations made on staging is declared", class: "good" },
  refused: { text: "refused: the migrations changed data they do not declare", class: "bad" },
  "held-for-approval": { text: "not judged: the bundle declares no data changes, so an admin approves the promotion", class: "warn" },
} as const;

/** The data-diff gate: its verdict, what the release declares (with what was measured), and what it does not. */
function presentDataGate(u: Upgrade) {
  const g = u.report.dataGate;
  if (!g) return undefined;
  const measuredText = (m: { tables: number; rows: number; seconds: number } | undefined, suffix = "") =>
    m ? `${m.tables} tables, ${m.rows.toLocaleString("en-GB")} rows, fingerprinted in ${seconds(m.seconds)}${suffix}` : "—";
  return {
    verdict: g.verdict ?? "pending",
    verdictText: g.verdict ? GATE_VERDICT[g.verdict].text : "measured by stage, judged first thing in validate",
    verdictClass: g.verdict ? GATE_VERDICT[g.verdict].class : "warn",
    before: measuredText(g.before, g.before?.from === "restore" ? " (by the restore, verified against the snapshot's manifest)" : ""),
    after: measuredText(g.after),
    rows: g.rowsSeconds === undefined ? undefined : seconds(g.rowsSeconds),
    migrations: (g.migrations ?? []).join(", ") || "none",
    declared: (g.declared ?? []).map((d) => ({ migration: d.migration, what: describeChange(d), measured: d.measured, source: d.source, note: d.note })),
    undeclared: (g.undeclared ?? []).map(describeUndeclared),
    unread: g.unread ?? [],
    hold: g.hold,
  };
}

/** The support bundle of an unsuccessful upgrade: its file name and the console's download, or why none was written. */
function presentSupportBundle(b: Upgrade["report"]["supportBundle"]) {
  if (!b) return undefined;
  if ("error" in b) return { error: b.error, writtenAt: asDate(b.writtenAt) };
  const name = path.basename(b.file);
  return { name, href: `/support-bundles/${encodeURIComponent(name)}`, writtenAt: asDate(b.writtenAt) };
}

/** An upgrade (or rollback) for the pages: the row, its step list and the decisions and figures of its report. */
export function presentUpgrade(u: Upgrade) {
  const finished = FINISHED.includes(u.status);
  const soak = u.report.soak;
  const rollback = u.report.rollback;
  return {
    id: u.id,
    kind: u.kind,
    title: u.kind === "rollback" ? "Rollback" : "Upgrade",
    fromVersion: u.fromVersion,
    toVersion: u.toVersion,
    status: u.status,
    statusText: STATUS_TEXT[u.status],
    statusClass: u.status === "completed" ? "good" : ["failed", "rolled-back", "aborted", "restore-pending"].includes(u.status) ? "bad" : "warn",
    step: u.step,
    finished,
    promotion: u.promotion,
    requestedBy: u.requestedBy,
    approvedBy: u.approvedBy,
    approvedAt: u.approvedAt,
    createdAt: u.createdAt,
    finishedAt: u.finishedAt,
    took: u.finishedAt ? seconds((u.finishedAt.getTime() - u.createdAt.getTime()) / 1000) : "—",
    error: u.error,
    snapshotSetId: u.snapshotSetId,
    rollbackMode: u.report.rollbackMode ?? (u.rollbackMode ? { mode: u.rollbackMode, why: "" } : undefined),
    steps: presentSteps(u),
    suites: presentSuites(u),
    migrations: presentMigrations(u),
    dataGate: presentDataGate(u),
    promotionReport: u.report.promotion && { ...u.report.promotion, windowOpenedAt: asDate(u.report.promotion.windowOpenedAt) },
    soak: soak && { ...soak, seconds: seconds(soak.seconds), p99: soak.p99Ms === null ? "—" : `${soak.p99Ms} ms` },
    rollback: rollback && {
      ...rollback,
      trafficBackAt: asDate(rollback.trafficBackAt),
      secondsToOldVersion: rollback.secondsToOldVersion === undefined ? undefined : seconds(rollback.secondsToOldVersion),
    },
    supportBundle: presentSupportBundle(u.report.supportBundle),
    writeWindow: rollback?.writeWindow && { from: new Date(rollback.writeWindow.from), to: new Date(rollback.writeWindow.to) },
    reportJson: JSON.stringify(u.report, null, 2),
  };
}

/** What the live script needs to update the step list in place. */
export function presentLive(u: Upgrade) {
  return {
    id: u.id,
    status: u.status,
    statusText: STATUS_TEXT[u.status],
    step: u.step,
    finished: FINISHED.includes(u.status),
    steps: presentSteps(u).map(({ name, state, text, seconds: s }) => ({ name, state, text, seconds: s })),
  };
}

export function presentJournal(entries: JournalEntry[]) {
  return entries.map((e) => ({
    id: e.id,
    at: e.at,
    step: e.step,
    phase: e.phase,
    detail: Object.keys(e.detail ?? {}).length > 0 ? JSON.stringify(e.detail) : "",
  }));
}

/** The buttons an upgrade allows now, mirroring the manager's own refusals (which still have the last word). */
export function upgradeActions(u: Upgrade | undefined, may: { operate: boolean; approve: boolean }) {
  if (!u || FINISHED.includes(u.status)) return { any: false };
  const approve = may.approve && u.status === "waiting" && u.promotion === "approval" && !u.approvedBy;
  const abort = may.operate && (u.status === "waiting" || (BEFORE_PROMOTE.includes(u.step) && u.status === "running"));
  const rollback = may.operate && u.kind === "upgrade" && (u.step === "soak" || u.step === "promote") && (u.status === "soaking" || u.status === "running");
  const confirmRestore = may.approve && u.status === "restore-pending";
  return { any: approve || abort || rollback || confirmRestore, approve, abort, rollback, confirmRestore };
}
