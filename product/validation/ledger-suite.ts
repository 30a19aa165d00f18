import { noRows, type CheckResult, type SuiteEnv } from "./suite.ts";

/**
 * The points ledger is consistent: no balance below zero, no entry without its participant, every redemption
 * entry matches its voucher (and every voucher has exactly one redemption entry), signs match kinds.
 */
export async function ledgerChecks(env: SuiteEnv): Promise<CheckResult[]> {
  return Promise.all([
    noRows(
      env,
      "no balance is below zero",
      "select participant_id, sum(points) as balance from ledger_entries group by participant_id having sum(points) < 0",
      (r) => `participant ${r.participant_id} has ${r.balance}`,
    ),
    noRows(
      env,
      "no entry without its participant",
      "select e.id, e.participant_id from ledger_entries e left join participants p on p.id = e.participant_id where p.id is null",
      (r) => `entry ${r.id} names participant ${r.participant_id}`,
    ),
    noRows(
      env,
      "every redemption entry matches its voucher",
      `select e.id, e.points, v.id as voucher_id, v.points_cost from ledger_entries e left join vouchers v on v.id = e.voucher_id
        where e.kind = 'redemption' and (v.id is null or v.points_cost <> -e.points or v.participant_id <> e.participant_id)`,
      (r) =>
        r.voucher_id ? `entry ${r.id} took ${-Number(r.points)} points for voucher ${r.voucher_id} costing ${r.points_cost}` : `entry ${r.id} has no voucher`,
    ),
    noRows(
      env,
      "every voucher was paid by exactly one redemption entry",
      "select v.id, count(e.id) as entries from vouchers v left join ledger_entries e on e.voucher_id = v.id and e.kind = 'redemption' group by v.id having count(e.id) <> 1",
      (r) => `voucher ${r.id} has ${r.entries} redemption entries`,
    ),
    noRows(
      env,
      "every entry's sign matches its kind",
      "select id, kind, points from ledger_entries where points = 0 or (kind in ('award', 'reversal') and points < 0) or (kind = 'redemption' and points > 0)",
      (r) => `entry ${r.id}: ${r.kind} of ${r.points}`,
    ),
  ]);
}
