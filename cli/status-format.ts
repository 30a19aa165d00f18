import type { StatusReport } from "../appliance/status/status-report.ts";
import { gib } from "../lib/disk-space.ts";

/** "12 s", "3.4 min", "5.2 h", "2.1 days": an age an operator reads at a glance. */
export function ageText(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

const ok = (pass: boolean) => (pass ? "ok" : "FAIL");

/** The report for a terminal: the verdict first, then one aligned line per part. */
export function describeStatus(r: StatusReport, plumctlVersion: string): string {
  const version = r.agent.version ?? plumctlVersion;
  const lines: Array<[string, string]> = [];
  const a = r.agent;
  lines.push([
    "agent",
    a.answering
      ? `running, pid ${a.pid}, release ${a.version}, up since ${a.startedAt}`
      : `${a.running ? `pid ${a.pid} runs but does not answer` : "not running"}${a.pid && !a.running ? ` (pid file ${a.pidFile} names ${a.pid}, gone)` : ""}; ${a.hint}`,
  ]);
  if (r.production) {
    const p = r.production;
    lines.push([
      "production",
      `${p.version ?? "nothing"}${p.instance ? ` (${p.instance})` : ""}: ${p.healthy ? "healthy" : `NOT healthy: ${p.detail}`} (live ${p.live ? "yes" : "no"}, ready ${p.ready ? "yes" : "no"})`,
    ]);
  }
  if (r.proxy)
    lines.push(["edge proxy", `${r.proxy.listening} → ${r.proxy.instance ? `${r.proxy.instance} (release ${r.proxy.version})` : "nothing (answers 503)"}`]);
  if (r.database) {
    const d = r.database;
    lines.push(["database", `${d.mode}, ${d.host}:${d.port}, PostgreSQL ${d.serverVersion}, ${d.reachable ? "reachable" : `NOT reachable: ${d.detail}`}`]);
  }
  if (r.backup) {
    const b = r.backup;
    lines.push([
      "last backup",
      b.lastSet
        ? `${b.lastSet.id} (${b.lastSet.kind}) at ${b.lastSet.finishedAt}, ${ageText(b.lastSet.ageSeconds)} ago; RPO ${b.rpoHours} h: ${ok(b.withinRpo)}`
        : `none yet; RPO ${b.rpoHours} h: ${ok(b.withinRpo)}`,
    ]);
    const o = b.offsite;
    lines.push([
      "off-site copy",
      !o.configured
        ? "no secondary repository (backup.secondary)"
        : o.copiedAt
          ? `copied at ${o.copiedAt}, data ${ageText(o.dataAgeSeconds ?? 0)} old; limit ${o.maxAgeHours} h: ${ok(o.ok)}`
          : `none yet; limit ${o.maxAgeHours} h: ${ok(o.ok)}`,
    ]);
    const d = b.drill;
    lines.push([
      "restore drill",
      d.at
        ? `${d.at}, RTO ${d.rtoSeconds ?? "?"} s (target ${d.rtoTargetSeconds} s), within ${d.maxAgeDays} days: ${ok(d.ok)}`
        : `none yet; within ${d.maxAgeDays} days: ${ok(d.ok)}`,
    ]);
    const failing = b.controls.filter((c) => c.result === "fail").map((c) => c.id);
    lines.push(["controls", `${b.controls.length - failing.length} pass, ${failing.length} fail${failing.length ? `: ${failing.join(", ")}` : ""}`]);
  }
  for (const d of r.disk) lines.push([`disk (${d.what})`, `${gib(d.freeBytes).toFixed(1)} GiB free of ${gib(d.totalBytes).toFixed(1)} GiB on ${d.path}`]);
  if (a.answering) {
    const u = r.upgrade;
    lines.push(["upgrade", u ? `${u.kind} ${u.id}: ${u.fromVersion} → ${u.toVersion}, ${u.status} at ${u.step} (since ${u.startedAt})` : "none pending"]);
  }
  const width = Math.max(...lines.map(([k]) => k.length)) + 2;
  // A reason is "headline: detail" (status-verdict.ts): the headlines make the verdict line, the details follow it.
  const headline = (reason: string) => (reason.includes(": ") ? reason.slice(0, reason.indexOf(": ")) : reason);
  const head = `Plum appliance ${version}: ${r.verdict}${r.reasons.length ? `: ${r.reasons.map(headline).join("; ")}` : ""}`;
  const details = r.reasons.filter((x) => x !== headline(x)).map((x) => `  - ${x}`);
  return [head, ...details, ...lines.map(([k, v]) => `  ${k.padEnd(width)}${v}`)].join("\n") + "\n";
}
