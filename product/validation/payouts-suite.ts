import { QueryTypes, Transaction } from "sequelize";
import { GOLDEN_CASES, GOLDEN_TERMS } from "../payouts/golden-cases.ts";
import { calculatePayout, checkPayoutTerms } from "../payouts/payout-calculator.ts";
import { payoutDifferences, payoutLinesFromSales, ruleForPeriod, storedPayoutLines, termsOf } from "../payouts/payout-lines.ts";
import { check, type CheckResult, type SuiteEnv } from "./suite.ts";

const listed = (problems: string[]) => `${problems.slice(0, 5).join("; ")}${problems.length > 5 ? `; … (${problems.length} in all)` : ""}`;

/** The calculator against payouts worked out by hand: every tier edge, the accelerator, the cap, the rounding tie. */
function goldenCasesCheck(): CheckResult {
  const wrong: string[] = [];
  for (const c of GOLDEN_CASES) {
    try {
      const r = calculatePayout(GOLDEN_TERMS, c);
      if (r.amountMinor !== c.amountMinor || r.attainmentBp !== c.attainmentBp || r.breakdown.capped !== c.capped) {
        wrong.push(
          `${c.name}: expected ${c.amountMinor} at ${c.attainmentBp} bp${c.capped ? " (capped)" : ""}, got ${r.amountMinor} at ${r.attainmentBp} bp${r.breakdown.capped ? " (capped)" : ""}`,
        );
      }
    } catch (err) {
      wrong.push(`${c.name}: ${(err as Error).message}`);
    }
  }
  return check(
    "payout calculator reproduces the golden cases",
    wrong.length === 0,
    wrong.length === 0 ? `${GOLDEN_CASES.length} cases reproduced: tier edges, accelerator, cap, half-down rounding` : listed(wrong),
  );
}

/** Every stored rule: tiers strictly ascending, rates not negative, accelerator at least 1×, cap positive. */
async function storedRulesCheck(env: SuiteEnv, transaction: Transaction): Promise<CheckResult> {
  const rules = await env.sequelize.query<{ name: string; effective_from: string; tiers: unknown; accelerator_bp: number; cap_minor: string }>(
    "select p.name, r.effective_from, r.tiers, r.accelerator_bp, r.cap_minor from payout_rules r join programmes p on p.id = r.programme_id order by p.name, r.effective_from",
    { type: QueryTypes.SELECT, transaction },
  );
  const bad = rules.flatMap((r) => {
    const problems = checkPayoutTerms({ tiers: r.tiers, acceleratorBp: r.accelerator_bp, capMinor: BigInt(r.cap_minor) });
    return Object.entries(problems).map(([field, problem]) => `"${r.name}" rule from ${r.effective_from}: ${field} ${problem}`);
  });
  return check(
    "stored payout rules are valid",
    bad.length === 0,
    bad.length === 0 ? `${rules.length} rules checked: tiers ascending, rates not negative, caps positive` : listed(bad),
  );
}

/** The latest approved run of each programme, recomputed from the stored sales and rule, must give the stored payouts. */
async function approvedRunsCheck(env: SuiteEnv, transaction: Transaction): Promise<CheckResult> {
  const runs = await env.sequelize.query<{ id: number; programme_id: number; period: string; rule_id: number; name: string }>(
    `select distinct on (r.programme_id) r.id, r.programme_id, r.period, r.rule_id, p.name
       from payout_runs r join programmes p on p.id = r.programme_id
      where r.status in ('approved', 'exported') order by r.programme_id, r.period desc`,
    { type: QueryTypes.SELECT, transaction },
  );
  const bad: string[] = [];
  let payouts = 0;
  for (const run of runs) {
    const where = `"${run.name}" ${run.period}`;
    const rule = await ruleForPeriod(env.sequelize, run.programme_id, run.period, transaction);
    if (!rule) {
      bad.push(`${where}: no payout rule governs the period any more`);
      continue;
    }
    if (rule.id !== run.rule_id)
      bad.push(`${where}: computed with rule #${run.rule_id}, but rule #${rule.id} (from ${rule.effectiveFrom}) governs the period now`);
    try {
      const stored = await storedPayoutLines(env.sequelize, run.id, transaction);
      payouts += stored.length;
      const differences = payoutDifferences(stored, await payoutLinesFromSales(env.sequelize, run.programme_id, run.period, termsOf(rule), transaction));
      if (differences.length > 0)
        bad.push(`${where}: ${differences.length} payout${differences.length === 1 ? " differs" : "s differ"} (${listed(differences)})`);
    } catch (err) {
      bad.push(`${where}: cannot be recomputed: ${(err as Error).message}`);
    }
  }
  const passed = `${runs.length === 0 ? "no approved runs yet" : `${runs.length} latest approved run${runs.length === 1 ? "" : "s"} reproduced exactly (${payouts} payouts)`}`;
  return check("approved payout runs reproduce from their sales and rule", bad.length === 0, bad.length === 0 ? passed : listed(bad));
}

/**
 * The payouts suite of `plumctl validate`: the calculator against golden cases, the stored rules, and the latest
 * approved run of each programme recomputed from what is stored. Read-only: one read-only transaction, rolled back.
 */
export async function payoutsChecks(env: SuiteEnv): Promise<CheckResult[]> {
  const results = [goldenCasesCheck()];
  const transaction = await env.sequelize.transaction({ isolationLevel: Transaction.ISOLATION_LEVELS.REPEATABLE_READ });
  try {
    await env.sequelize.query("set transaction read only", { transaction });
    results.push(await storedRulesCheck(env, transaction));
    results.push(await approvedRunsCheck(env, transaction));
  } finally {
    await transaction.rollback();
  }
  return results;
}
