import { Op, QueryTypes, type Sequelize, type Transaction } from "sequelize";
import { definePayoutModels, type PayoutRule } from "../models/payout-models.ts";
import { calculatePayout, type PayoutBreakdown, type PayoutTerms } from "./payout-calculator.ts";

/** One participant's payout in a period, as computed now or as stored in a run. */
export interface PayoutLine {
  participantId: number;
  employeeId: string;
  attainmentBp: bigint;
  amountMinor: bigint;
}

export interface ComputedPayoutLine extends PayoutLine {
  detail: PayoutBreakdown;
}

/** The rule that governs a period: the one with the latest `effectiveFrom` not after it. */
export async function ruleForPeriod(sequelize: Sequelize, programmeId: number, period: string, transaction?: Transaction): Promise<PayoutRule | null> {
  const { PayoutRule } = definePayoutModels(sequelize);
  return PayoutRule.findOne({ where: { programmeId, effectiveFrom: { [Op.lte]: period } }, order: [["effectiveFrom", "DESC"]], transaction });
}

export function termsOf(rule: PayoutRule): PayoutTerms {
  return { tiers: rule.tiers, acceleratorBp: rule.acceleratorBp, capMinor: BigInt(rule.capMinor) };
}

/** The periods of a programme whose run is approved or exported, newest first: their payouts and sales are frozen. */
export async function frozenPeriods(sequelize: Sequelize, programmeId: number, transaction?: Transaction): Promise<string[]> {
  const { PayoutRun } = definePayoutModels(sequelize);
  const runs = await PayoutRun.findAll({
    where: { programmeId, status: ["approved", "exported"] },
    attributes: ["period"],
    order: [["period", "DESC"]],
    transaction,
  });
  return runs.map((r) => r.period);
}

/** The latest frozen period: a rule taking effect in it or before would change approved payouts, so none may. */
export async function latestFrozenPeriod(sequelize: Sequelize, programmeId: number, transaction?: Transaction): Promise<string | undefined> {
  return (await frozenPeriods(sequelize, programmeId, transaction))[0];
}

/** The payouts a period's stored sales records earn under the given terms, by employee id. */
export async function payoutLinesFromSales(
  sequelize: Sequelize,
  programmeId: number,
  period: string,
  terms: PayoutTerms,
  transaction?: Transaction,
): Promise<ComputedPayoutLine[]> {
  const sales = await sequelize.query<{ participant_id: number; employee_id: string; quota_minor: string; sales_minor: string }>(
    `select s.participant_id, p.employee_id, s.quota_minor, s.sales_minor
       from sales_records s join participants p on p.id = s.participant_id
      where s.programme_id = :programmeId and s.period = :period order by p.employee_id`,
    { replacements: { programmeId, period }, type: QueryTypes.SELECT, transaction },
  );
  return sales.map((s) => {
    const result = calculatePayout(terms, { quotaMinor: BigInt(s.quota_minor), salesMinor: BigInt(s.sales_minor) });
    return {
      participantId: s.participant_id,
      employeeId: s.employee_id,
      attainmentBp: result.attainmentBp,
      amountMinor: result.amountMinor,
      detail: result.breakdown,
    };
  });
}

/** The payouts stored in a run, by employee id. */
export async function storedPayoutLines(sequelize: Sequelize, runId: number, transaction?: Transaction): Promise<PayoutLine[]> {
  const rows = await sequelize.query<{ participant_id: number; employee_id: string; attainment_bp: string; amount_minor: string }>(
    `select o.participant_id, p.employee_id, o.attainment_bp, o.amount_minor
       from payouts o join participants p on p.id = o.participant_id
      where o.run_id = :runId order by p.employee_id`,
    { replacements: { runId }, type: QueryTypes.SELECT, transaction },
  );
  return rows.map((r) => ({
    participantId: r.participant_id,
    employeeId: r.employee_id,
    attainmentBp: BigInt(r.attainment_bp),
    amountMinor: BigInt(r.amount_minor),
  }));
}

/** Where stored payouts and recomputed ones disagree, one sentence per participant; empty when they agree. */
export function payoutDifferences(stored: PayoutLine[], recomputed: PayoutLine[]): string[] {
  const now = new Map(recomputed.map((l) => [l.participantId, l]));
  const out: string[] = [];
  for (const s of stored) {
    const r = now.get(s.participantId);
    now.delete(s.participantId);
    if (!r) out.push(`${s.employeeId}: paid ${s.amountMinor} but has no sales record any more`);
    else if (r.amountMinor !== s.amountMinor || r.attainmentBp !== s.attainmentBp)
      out.push(`${s.employeeId}: stored ${s.amountMinor} at ${s.attainmentBp} bp, recomputed ${r.amountMinor} at ${r.attainmentBp} bp`);
  }
  for (const r of now.values()) out.push(`${r.employeeId}: has sales but no payout in the run`);
  return out;
}
