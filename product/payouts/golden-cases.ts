import type { PayoutTerms } from "./payout-calculator.ts";

/**
 * Known inputs and the payouts worked out by hand, at every tier edge, above quota with the accelerator, at the
 * cap and on the rounding tie. The unit tests and `plumctl validate` both hold the calculator to them.
 *
 * Rule: below 50 % nothing; from 50 % 2 % of sales; from 80 % 4 %; from 100 % 6 %, with sales above quota paid at
 * 1.5 × 6 % = 9 %; at most 1,500.00 per participant. Quota 10,000.00 (1,000,000 minor units).
 */
export const GOLDEN_TERMS: PayoutTerms = {
  tiers: [
    { fromAttainmentBp: 0, rateBp: 0 },
    { fromAttainmentBp: 5000, rateBp: 200 },
    { fromAttainmentBp: 8000, rateBp: 400 },
    { fromAttainmentBp: 10000, rateBp: 600 },
  ],
  acceleratorBp: 15000,
  capMinor: 150_000n,
};

export interface GoldenCase {
  name: string;
  quotaMinor: bigint;
  salesMinor: bigint;
  attainmentBp: bigint;
  amountMinor: bigint;
  capped: boolean;
}

const QUOTA = 1_000_000n;
const golden = (name: string, salesMinor: bigint, attainmentBp: bigint, amountMinor: bigint, capped = false): GoldenCase => ({
  name,
  quotaMinor: QUOTA,
  salesMinor,
  attainmentBp,
  amountMinor,
  capped,
});

export const GOLDEN_CASES: GoldenCase[] = [
  golden("no sales pays nothing", 0n, 0n, 0n),
  golden("one minor unit below the 50 % tier pays nothing", 499_999n, 4_999n, 0n),
  golden("exactly at the 50 % tier pays 2 % of all sales", 500_000n, 5_000n, 10_000n),
  golden("exactly half a minor unit rounds down (10,000.5 → 10,000)", 500_025n, 5_000n, 10_000n),
  golden("more than half a minor unit rounds up (10,000.52 → 10,001)", 500_026n, 5_000n, 10_001n),
  golden("one minor unit below the 80 % tier stays at 2 % (15,999.98 → 16,000)", 799_999n, 7_999n, 16_000n),
  golden("exactly at the 80 % tier pays 4 % of all sales", 800_000n, 8_000n, 32_000n),
  golden("one minor unit below quota stays at 4 % (39,999.96 → 40,000)", 999_999n, 9_999n, 40_000n),
  golden("exactly at quota pays 6 % of all sales, nothing accelerated", 1_000_000n, 10_000n, 60_000n),
  golden("half a minor unit above quota from the accelerator rounds down (60,004.5 → 60,004)", 1_000_050n, 10_000n, 60_004n),
  golden("150 % of quota: 6 % up to quota, 9 % above it", 1_500_000n, 15_000n, 105_000n),
  golden("one minor unit below the cap is paid in full", 1_999_989n, 19_999n, 149_999n),
  golden("exactly at the cap is paid in full", 2_000_000n, 20_000n, 150_000n),
  golden("over the cap is limited to the cap", 2_000_012n, 20_000n, 150_000n, true),
];
