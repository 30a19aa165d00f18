import type { PayoutRule, PayoutRun } from "../models/payout-models.ts";
import { formatBpAsPercent, formatMinor, formatScaled } from "../payouts/minor-units.ts";
import { TIER_LIMITS, type PayoutBreakdown } from "../payouts/payout-calculator.ts";

/** 15000 bp → "1.5" (×), 10000 → "1". */
export function formatMultiplier(bp: number): string {
  return formatScaled(BigInt(bp), 4).replace(/\.?0+$/, "");
}

export function presentRule(rule: PayoutRule, currency: string) {
  return {
    id: rule.id,
    effectiveFrom: rule.effectiveFrom,
    tiers: rule.tiers.map((t) => ({ from: formatBpAsPercent(t.fromAttainmentBp), rate: formatBpAsPercent(t.rateBp) })),
    accelerator: formatMultiplier(rule.acceleratorBp),
    cap: formatMinor(BigInt(rule.capMinor), currency),
    updatedBy: rule.updatedBy,
    updatedAt: rule.updatedAt,
  };
}

/** The rule form's values: as typed (after a refused save), else the given rule's, else empty; one row per possible tier. */
export function ruleFormValues(currency: string, rule: PayoutRule | null, suggestedFrom: string, typed?: Record<string, unknown>) {
  const shown = rule ? presentRule(rule, currency) : undefined;
  const text = (key: string, fallback = "") => (typed ? String(typed[key] ?? "") : fallback);
  return {
    effectiveFrom: text("effectiveFrom", suggestedFrom),
    tiers: Array.from({ length: TIER_LIMITS.maxTiers }, (_, i) => ({
      i,
      n: i + 1,
      from: text(`from${i}`, shown?.tiers[i]?.from),
      rate: text(`rate${i}`, shown?.tiers[i]?.rate),
    })),
    accelerator: text("accelerator", shown?.accelerator ?? "1"),
    cap: text("cap", shown?.cap),
  };
}

export function presentRun(run: PayoutRun) {
  return {
    id: run.id,
    period: run.period,
    status: run.status,
    computed: run.status === "computed",
    frozen: run.status !== "computed",
    computedBy: run.computedBy,
    computedAt: run.computedAt,
    approvedBy: run.approvedBy,
    approvedAt: run.approvedAt,
    exportedAt: run.exportedAt,
  };
}

/** One sentence that says how an amount came about: tier, rate, accelerator, rounding, cap. */
export function explainPayout(b: PayoutBreakdown, currency: string): string {
  if (!b.tier) return "below the first tier: nothing is paid";
  const money = (minor: string) => `${formatMinor(BigInt(minor), currency)} ${currency}`;
  const rate = `${formatBpAsPercent(b.tier.rateBp)} %`;
  const accelerated =
    b.acceleratedSalesMinor !== "0" ? ` + ${rate} × ${formatMultiplier(b.acceleratorBp)} of ${money(b.acceleratedSalesMinor)} above quota` : "";
  const cap = b.capped ? `, capped at ${money(b.capMinor)}` : "";
  return `tier ${b.tier.index + 1} (from ${formatBpAsPercent(b.tier.fromAttainmentBp)} %): ${rate} of ${money(b.baseSalesMinor)}${accelerated} makes ${money(b.uncappedMinor)} (rounded half down)${cap}`;
}
