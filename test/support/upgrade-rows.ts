import type { Upgrade, UpgradeJournal, UpgradeReport } from "../../appliance/upgrade/upgrade-journal.ts";

/**
 * Upgrade rows for the console's pages, written through the journal the upgrade manager itself uses. They stand
 * for what an upgrade recorded; the tests that use them check how pages show them, never the upgrade itself.
 */
export async function buildUpgrade(journal: UpgradeJournal, overrides: Partial<Omit<Upgrade, "id" | "createdAt">> = {}): Promise<Upgrade> {
  const created = await journal.create({
    kind: overrides.kind ?? "upgrade",
    fromVersion: overrides.fromVersion ?? "1.0.0",
    toVersion: overrides.toVersion ?? "1.1.0",
    promotion: overrides.promotion ?? "approval",
    requestedBy: overrides.requestedBy ?? "user:opal",
    step: overrides.step,
  });
  const { kind: _k, fromVersion: _f, toVersion: _t, promotion: _p, requestedBy: _r, ...changes } = overrides;
  return Object.keys(changes).length > 0 ? journal.update(created.id, changes) : created;
}

const at = (minutes: number) => new Date(Date.UTC(2025, 0, 15, 2, minutes)).toISOString();

/** The report of an upgrade that was promoted, breached its soak and was rolled back with down migrations. */
export function rolledBackReport(): UpgradeReport {
  const step = (from: number, secs: number, outcome: "done" | "failed" = "done", detail?: unknown) => ({
    startedAt: at(from),
    finishedAt: at(from + 1),
    seconds: secs,
    outcome,
    detail,
  });
  return {
    steps: {
      verify: step(0, 1.2),
      snapshot: step(1, 14.5),
      stage: step(2, 41.3),
      validate: step(3, 63.9),
      promote: step(5, 12.1),
      soak: step(6, 37),
      rollback: step(7, 8.4),
    },
    migrations: {
      staging: { ran: ["1733000000000_gift-cards"], seconds: 2.5 },
      production: { ran: ["1733000000000_gift-cards"], seconds: 2.7 },
      undone: { ran: ["1733000000000_gift-cards"], seconds: 1.1 },
    },
    suites: {
      release: [
        { suite: "health", passed: true, checks: [{ name: "ready endpoint answers", passed: true, detail: "200 in 12 ms" }] },
        { suite: "ledger", passed: true, checks: [{ name: "balances match the ledger", passed: true, detail: "0 participants differ" }] },
      ],
      currentSmoke: [
        {
          suite: "smoke",
          passed: false,
          checks: [
            { name: "home page renders", passed: true, detail: "200" },
            { name: "voucher list loads", passed: false, detail: "column vouchers.gift_card_id does not exist" },
          ],
        },
      ],
    },
    rollbackMode: {
      mode: "down-migrations",
      why: "1.0.0's smoke suite failed on the new schema (smoke: voucher list loads); 1.1.0's down migrations took staging back in 1.1 s",
    },
    promotion: { waitedFor: "approval", approvedBy: "user:admin" },
    soak: { seconds: 37, requests: 412, errors5xx: 31, p99Ms: 180, healthFailures: 0, breach: "5xx ratio 7.5% above 2%" },
    rollback: { reason: "soak breach: 5xx ratio 7.5% above 2%", by: "agent", breachAt: at(6), trafficBackAt: at(7), secondsToOldVersion: 2.3 },
  };
}
