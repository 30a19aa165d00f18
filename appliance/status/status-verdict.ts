import type { StatusFacts, StatusReport } from "./status-report.ts";

const hours = (seconds: number) => `${Math.round((seconds / 3600) * 10) / 10} h`;

/**
 * What fails, one sentence each: the agent down, production unhealthy, the database unreachable, the last
 * backup older than the RPO (or none), any evidence control failing, any part that could not be read. Nothing
 * else (an upgrade under way, disk left) makes an appliance degraded: those are shown, not judged. A reason
 * reads "headline: detail" (the detail optional, the headline without ": "): `plumctl status` puts the
 * headlines on its verdict line.
 */
export function statusReasons(facts: StatusFacts): string[] {
  const reasons: string[] = [];
  const { agent } = facts;
  if (!agent.answering) reasons.push(agent.running ? `the agent (pid ${agent.pid}) runs but does not answer` : "the agent is not running");
  if (facts.production && !facts.production.healthy) reasons.push(`production is not healthy: ${facts.production.detail}`);
  if (facts.database && !facts.database.reachable) reasons.push(`the database does not answer: ${facts.database.detail ?? "no reason given"}`);
  const backup = facts.backup;
  if (backup) {
    const last = backup.lastSet;
    const old = last && !backup.withinRpo && last.ageSeconds >= backup.rpoHours * 3600;
    if (!last) reasons.push("no backup set has succeeded yet");
    else if (old) reasons.push(`the last backup set ${last.id} is ${hours(last.ageSeconds)} old, older than the RPO of ${backup.rpoHours} h`);
    // The RPO in the IT team's words when that is what failed; every other failing control (and the RPO's,
    // when the evidence disagrees with the catalogue) as the auditor reads it.
    for (const c of backup.controls) if (c.result === "fail" && !(c.id === "backup-rpo" && (old || !last))) reasons.push(`control ${c.id} fails: ${c.finding}`);
  }
  reasons.push(...facts.unread);
  return reasons;
}

/** The report: the facts, the verdict they give and its reasons. */
export function statusReport(facts: StatusFacts): StatusReport {
  const { unread: _unread, ...rest } = facts;
  const reasons = statusReasons(facts);
  return { verdict: reasons.length ? "degraded" : "healthy", reasons, ...rest };
}
