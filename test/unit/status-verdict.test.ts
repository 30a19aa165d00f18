import { expect } from "chai";
import type { BackupStatus } from "../../backup/backup-status.ts";
import type { StatusFacts } from "../../appliance/status/status-report.ts";
import { statusReport } from "../../appliance/status/status-verdict.ts";
import { ageText } from "../../cli/status-format.ts";

const CONTROL_IDS = ["backup-rpo", "retention", "offsite-copy", "integrity-check", "restore-drill", "encryption", "append-only-storage"] as const;

function buildBackup(overrides: Partial<BackupStatus> = {}): BackupStatus {
  return {
    asOf: "2025-03-12T12:00:00.000Z",
    rpoHours: 6,
    lastSet: { id: "20250312T100000-abcdef", kind: "scheduled", finishedAt: "2025-03-12T10:05:00.000Z", ageSeconds: 6900 },
    withinRpo: true,
    offsite: { configured: true, maxAgeHours: 24, copiedAt: "2025-03-12T10:06:00.000Z", dataAgeSeconds: 6900, ok: true },
    drill: { maxAgeDays: 8, rtoTargetSeconds: 3600, at: "2025-03-09T04:00:00.000Z", rtoSeconds: 42, ok: true },
    controls: CONTROL_IDS.map((id) => ({ id, name: id, result: "pass", finding: "fine." })),
    ...overrides,
  };
}

/** A healthy appliance: the agent answers, production is live and ready, the database answers, backups pass. */
function buildFacts(overrides: Partial<StatusFacts> = {}): StatusFacts {
  return {
    checkedAt: "2025-03-12T12:00:00.000Z",
    agent: { running: true, answering: true, version: "0.1.0", pid: 42, startedAt: "2025-03-01T00:00:00.000Z", pidFile: "/srv/plum/run/agent.pid", hint: null },
    production: { version: "0.1.0", instance: "production@0.1.0-1", healthy: true, live: true, ready: true, detail: "ready" },
    proxy: { listening: "http://127.0.0.1:8080", instance: "production@0.1.0-1", version: "0.1.0" },
    database: { mode: "embedded", host: "127.0.0.1", port: 5433, serverVersion: "15.10", reachable: true, detail: null },
    backup: buildBackup(),
    disk: [{ what: "home", path: "/srv/plum", freeBytes: 2 ** 30, totalBytes: 2 ** 34 }],
    upgrade: null,
    unread: [],
    ...overrides,
  };
}

const failing = (id: (typeof CONTROL_IDS)[number], finding: string) =>
  CONTROL_IDS.map((c) => ({ id: c, name: c, result: c === id ? ("fail" as const) : ("pass" as const), finding: c === id ? finding : "fine." }));

describe("plumctl status: the verdict", () => {
  it("healthy when nothing fails; an upgrade under way and little disk left are shown, not judged", () => {
    const report = statusReport(
      buildFacts({
        upgrade: {
          id: 3,
          kind: "upgrade",
          status: "waiting",
          step: "promote",
          fromVersion: "0.1.0",
          toVersion: "0.2.0",
          startedAt: "2025-03-12T11:00:00.000Z",
        },
        disk: [{ what: "home", path: "/srv/plum", freeBytes: 1024, totalBytes: 2 ** 34 }],
      }),
    );
    expect(report.verdict).to.equal("healthy");
    expect(report.reasons).to.deep.equal([]);
    expect(Object.keys(report)).to.deep.equal(["verdict", "reasons", "checkedAt", "agent", "production", "proxy", "database", "backup", "disk", "upgrade"]);
  });

  it("the last backup older than the RPO: degraded, said once in the IT team's words (not again as the backup-rpo control)", () => {
    const backup = buildBackup({
      lastSet: { id: "20250312T050000-abcdef", kind: "scheduled", finishedAt: "2025-03-12T05:00:00.000Z", ageSeconds: 7 * 3600 },
      withinRpo: false,
      controls: failing("backup-rpo", "Set 20250312T050000-abcdef finished at 2025-03-12T05:00:00.000Z, 7 h before; beyond the RPO."),
    });
    const report = statusReport(buildFacts({ backup }));
    expect(report.verdict).to.equal("degraded");
    expect(report.reasons).to.deep.equal(["the last backup set 20250312T050000-abcdef is 7 h old, older than the RPO of 6 h"]);
  });

  it("the catalogue's last set young but the backup-rpo control failing (no evidence of it): the control's own finding", () => {
    const backup = buildBackup({ withinRpo: false, controls: failing("backup-rpo", "There is no record of a successful backup.") });
    expect(statusReport(buildFacts({ backup })).reasons).to.deep.equal(["control backup-rpo fails: There is no record of a successful backup."]);
  });

  it("no set yet; a failing control with its finding", () => {
    const controls = failing("restore-drill", "There is no record of a restore drill.");
    controls[0] = { ...controls[0], result: "fail", finding: "There is no record of a successful backup." };
    const backup = buildBackup({ lastSet: null, withinRpo: false, controls });
    expect(statusReport(buildFacts({ backup })).reasons).to.deep.equal([
      "no backup set has succeeded yet",
      "control restore-drill fails: There is no record of a restore drill.",
    ]);
  });

  it("the agent down, or running without answering", () => {
    const down = { running: false, answering: false, version: null, pid: null, startedAt: null, pidFile: "/srv/plum/run/agent.pid", hint: "start it" };
    const none = { production: null, proxy: null, database: null, backup: null, upgrade: null };
    expect(statusReport(buildFacts({ agent: down, ...none })).reasons).to.deep.equal(["the agent is not running"]);
    const stuck = statusReport(buildFacts({ agent: { ...down, running: true, pid: 42 }, ...none, unread: ["timed out after 10 s"] }));
    expect(stuck.verdict).to.equal("degraded");
    expect(stuck.reasons).to.deep.equal(["the agent (pid 42) runs but does not answer", "timed out after 10 s"]);
  });

  it("production unhealthy, the database gone and a part unread: each said, in that order", () => {
    const report = statusReport(
      buildFacts({
        production: { version: "0.1.0", instance: "production@0.1.0-1", healthy: false, live: true, ready: false, detail: "database unreachable" },
        database: { mode: "external", host: "db.example", port: 5432, serverVersion: "15.10", reachable: false, detail: "connect ECONNREFUSED" },
        backup: null,
        unread: ["the backup catalogue and evidence could not be read: connect ECONNREFUSED"],
      }),
    );
    expect(report.reasons).to.deep.equal([
      "production is not healthy: database unreachable",
      "the database does not answer: connect ECONNREFUSED",
      "the backup catalogue and evidence could not be read: connect ECONNREFUSED",
    ]);
  });

  it("ages for a terminal", () => {
    expect([12, 600, 7 * 3600, 3 * 86400].map(ageText)).to.deep.equal(["12 s", "10.0 min", "7.0 h", "3.0 days"]);
  });
});
