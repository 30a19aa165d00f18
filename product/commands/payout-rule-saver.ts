import { BadRequestError } from "../../lib/http/http-errors.ts";
import { definePayoutModels, PERIOD_PATTERN, type PayoutRule } from "../models/payout-models.ts";
import { checkPayoutTerms, type PayoutTerms } from "../payouts/payout-calculator.ts";
import { latestFrozenPeriod } from "../payouts/payout-lines.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";
import { lockSalesProgramme } from "./payout-programme.ts";

export interface PayoutRuleInput extends PayoutTerms {
  programmeId: number;
  /** 'YYYY-MM': the rule applies from this period until a rule with a later period takes over. */
  effectiveFrom: string;
}

const NOT_SAVED = "The payout rule was not saved.";
const FIELD_NAMES: Record<string, string> = { tiers: "tiers", acceleratorBp: "accelerator", capMinor: "cap" };

/**
 * Save a programme's payout rule for the periods from `effectiveFrom` on (a second save for the same period
 * replaces it). Periods whose run is approved are frozen: a rule may only take effect after the latest of them.
 */
export async function payoutRuleSaver(props: { ctx: ProductContext; actor: ProductActor; input: PayoutRuleInput }): Promise<PayoutRule> {
  const { ctx, actor, input } = props;
  authorize(actor, "update", "Payout");
  const fields = Object.fromEntries(Object.entries(checkPayoutTerms(input)).map(([k, v]) => [FIELD_NAMES[k] ?? k, v]));
  if (!PERIOD_PATTERN.test(input.effectiveFrom)) fields.effectiveFrom = "a month as YYYY-MM, e.g. 2025-01";
  if (Object.keys(fields).length > 0) throw new BadRequestError(NOT_SAVED, fields);
  const { PayoutRule } = definePayoutModels(ctx.sequelize);
  return ctx.sequelize.transaction(async (transaction) => {
    await lockSalesProgramme(ctx, input.programmeId, transaction);
    const frozen = await latestFrozenPeriod(ctx.sequelize, input.programmeId, transaction);
    if (frozen && input.effectiveFrom <= frozen) {
      throw new BadRequestError(NOT_SAVED, {
        effectiveFrom: `the payouts of ${frozen} are approved and frozen, with the rule they were computed with: a new rule can take effect after ${frozen}`,
      });
    }
    const values = {
      tiers: input.tiers.map((t) => ({ fromAttainmentBp: t.fromAttainmentBp, rateBp: t.rateBp })),
      acceleratorBp: input.acceleratorBp,
      capMinor: input.capMinor.toString(),
      updatedBy: actorLabel(actor),
    };
    const existing = await PayoutRule.findOne({ where: { programmeId: input.programmeId, effectiveFrom: input.effectiveFrom }, transaction });
    const rule = existing
      ? await existing.update(values, { transaction })
      : await PayoutRule.create({ programmeId: input.programmeId, effectiveFrom: input.effectiveFrom, ...values }, { transaction });
    await ctx.models.events.append(
      {
        actor: actorLabel(actor),
        action: "payout.rule.save",
        target: `programme:${input.programmeId}`,
        detail: {
          effectiveFrom: input.effectiveFrom,
          tiers: values.tiers,
          acceleratorBp: values.acceleratorBp,
          capMinor: values.capMinor,
          replaced: !!existing,
        },
      },
      transaction,
    );
    return rule;
  });
}
