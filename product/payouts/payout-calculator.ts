import { BP_PER_UNIT, divideRoundHalfDown, formatBpAsPercent, MAX_MINOR } from "./minor-units.ts";

/**
 * The sales-incentive payout of one participant for one period, from the programme's payout rule. Pure: no
 * database, no clock, integers only (bigint for money).
 *
 * Semantics:
 * - **Attainment** = sales / quota in basis points, rounded DOWN to the basis point: a tier is reached only when it
 *   is really reached (7,999.99 of a 10,000.00 quota is 7,999 bp, not 8,000).
 * - **Tiers** are thresholds, strictly ascending: the tier that applies is the highest one whose
 *   `fromAttainmentBp` the attainment reaches (≥). Its `rateBp` applies to ALL the sales of the period, not only to
 *   the slice above its threshold (a "retroactive" tier). Below the first threshold nothing is paid.
 * - **Accelerator** (`acceleratorBp`, 10,000 = 1×): the sales above 100 % of quota earn the tier's rate multiplied
 *   by the accelerator; the sales up to quota earn the plain rate.
 * - **Rounding**: the exact amount — (min(sales, quota) × rate × 10,000 + excess × rate × accelerator) / 10^8 — is
 *   rounded once, HALF DOWN, to the minor unit (exactly half a cent goes down; more than half goes up).
 * - **Cap**: the rounded amount is limited to `capMinor` per participant per period.
 */

export interface PayoutTier {
  /** Attainment (bp of quota) from which this tier applies: 8000 = 80 % of quota. */
  fromAttainmentBp: number;
  /** Commission in bp of sales: 400 = 4 % of sales. */
  rateBp: number;
}

export interface PayoutTerms {
  tiers: PayoutTier[];
  /** Multiplies the rate for the sales above quota: 15000 = 1.5×. At least 10000 (1×). */
  acceleratorBp: number;
  /** The most one participant can earn in one period, in minor units. */
  capMinor: bigint;
}

export interface SalesFigures {
  quotaMinor: bigint;
  salesMinor: bigint;
}

/** How an amount came about; stored with each payout (bigints as decimal strings, so it is plain JSON). */
export interface PayoutBreakdown {
  quotaMinor: string;
  salesMinor: string;
  attainmentBp: string;
  /** The tier reached (index from 0), or null below the first threshold. */
  tier: { index: number; fromAttainmentBp: number; rateBp: number } | null;
  /** Sales up to quota, paid at the tier's rate. */
  baseSalesMinor: string;
  /** Sales above quota, paid at the tier's rate × the accelerator. */
  acceleratedSalesMinor: string;
  acceleratorBp: number;
  /** The amount before the cap, already rounded half down. */
  uncappedMinor: string;
  capMinor: string;
  capped: boolean;
  rounding: "half-down";
}

export interface PayoutResult {
  attainmentBp: bigint;
  amountMinor: bigint;
  breakdown: PayoutBreakdown;
}

export const TIER_LIMITS = { maxTiers: 10, maxFromAttainmentBp: 1_000_000, maxRateBp: 10_000, minAcceleratorBp: 10_000, maxAcceleratorBp: 100_000 } as const;

const percent = (bp: number) => `${formatBpAsPercent(bp)} %`;
const isIntIn = (v: unknown, min: number, max: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

/**
 * What is wrong with a payout rule, by field (tiers, acceleratorBp, capMinor); empty when it is valid. Takes
 * `unknown` values because it also judges rules read back from the database, which may have been edited by hand.
 */
export function checkPayoutTerms(terms: { tiers: unknown; acceleratorBp: unknown; capMinor: unknown }): Record<string, string> {
  const problems: Record<string, string> = {};
  const { tiers } = terms;
  if (!Array.isArray(tiers) || tiers.length === 0) problems.tiers = "at least one tier is needed";
  else if (tiers.length > TIER_LIMITS.maxTiers) problems.tiers = `at most ${TIER_LIMITS.maxTiers} tiers`;
  else {
    let previous: number | undefined;
    for (const [i, tier] of tiers.entries()) {
      const { fromAttainmentBp: from, rateBp: rate } = (tier ?? {}) as Record<string, unknown>;
      const label = `tier ${i + 1}`;
      if (!isIntIn(from, 0, TIER_LIMITS.maxFromAttainmentBp))
        problems.tiers = `${label}: its attainment threshold must be 0 to ${percent(TIER_LIMITS.maxFromAttainmentBp)} of quota in whole basis points (got ${JSON.stringify(from)} bp)`;
      else if (!isIntIn(rate, 0, TIER_LIMITS.maxRateBp))
        problems.tiers = `${label}: its rate must be 0 to ${percent(TIER_LIMITS.maxRateBp)} of sales in whole basis points, never negative (got ${JSON.stringify(rate)} bp)`;
      else if (previous !== undefined && from <= previous)
        problems.tiers = `${label}: thresholds must be strictly ascending (${percent(from)} follows ${percent(previous)})`;
      if (problems.tiers) break;
      previous = from as number;
    }
  }
  if (!isIntIn(terms.acceleratorBp, TIER_LIMITS.minAcceleratorBp, TIER_LIMITS.maxAcceleratorBp))
    problems.acceleratorBp = `must be from 1× to 10× (${TIER_LIMITS.minAcceleratorBp} to ${TIER_LIMITS.maxAcceleratorBp} bp; got ${String(terms.acceleratorBp)})`;
  const cap = terms.capMinor;
  if (typeof cap !== "bigint" || cap <= 0n || cap > MAX_MINOR)
    problems.capMinor = `must be more than 0 and at most ${MAX_MINOR} minor units (got ${String(cap)})`;
  return problems;
}

/** The payout for one participant's quota and sales under one rule (see the semantics above). */
export function calculatePayout(terms: PayoutTerms, figures: SalesFigures): PayoutResult {
  const problems = checkPayoutTerms(terms);
  if (Object.keys(problems).length > 0)
    throw new RangeError(
      `invalid payout rule: ${Object.entries(problems)
        .map(([k, v]) => `${k} ${v}`)
        .join("; ")}`,
    );
  const { quotaMinor: quota, salesMinor: sales } = figures;
  if (quota <= 0n) throw new RangeError(`quota must be positive (got ${quota})`);
  if (sales < 0n) throw new RangeError(`sales must not be negative (got ${sales})`);

  const attainmentBp = (sales * BP_PER_UNIT) / quota;
  let tierIndex = -1;
  for (const [i, tier] of terms.tiers.entries()) if (attainmentBp >= BigInt(tier.fromAttainmentBp)) tierIndex = i;
  const tier = tierIndex >= 0 ? terms.tiers[tierIndex] : undefined;

  const base = sales < quota ? sales : quota;
  const excess = sales - base;
  const rate = BigInt(tier?.rateBp ?? 0);
  const uncapped = divideRoundHalfDown(base * rate * BP_PER_UNIT + excess * rate * BigInt(terms.acceleratorBp), BP_PER_UNIT * BP_PER_UNIT);
  const capped = uncapped > terms.capMinor;
  const amountMinor = capped ? terms.capMinor : uncapped;

  return {
    attainmentBp,
    amountMinor,
    breakdown: {
      quotaMinor: quota.toString(),
      salesMinor: sales.toString(),
      attainmentBp: attainmentBp.toString(),
      tier: tier ? { index: tierIndex, fromAttainmentBp: tier.fromAttainmentBp, rateBp: tier.rateBp } : null,
      baseSalesMinor: base.toString(),
      acceleratedSalesMinor: excess.toString(),
      acceleratorBp: terms.acceleratorBp,
      uncappedMinor: uncapped.toString(),
      capMinor: terms.capMinor.toString(),
      capped,
      rounding: "half-down",
    },
  };
}
