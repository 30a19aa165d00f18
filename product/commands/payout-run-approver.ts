import { HttpError } from "../../lib/http/http-errors.ts";
import type { PayoutRun } from "../models/payout-models.ts";
import { payoutDifferences, payoutLinesFromSales, ruleForPeriod, storedPayoutLines, termsOf } from "../payouts/payout-lines.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";
import { frozenRunError, lockRun } from "./payout-run-computer.ts";

/**
 * Approve a computed run: records who and when, and freezes it (its payouts, its period's sales and the rule
 * that governs it). A run whose sales or rule changed after it was computed is refused: what is approved is
 * exactly what the stored sales and rule give, so it can be recomputed and checked later.
 */
export async function payoutRunApprover(props: { ctx: ProductContext; actor: ProductActor; input: { runId: number } }): Promise<PayoutRun> {
  const { ctx, actor, input } = props;
  authorize(actor, "approve", "Payout");
  return ctx.sequelize.transaction(async (transaction) => {
    const { run, programme } = await lockRun(ctx, input.runId, transaction);
    if (run.status !== "computed") throw frozenRunError(programme, run, "approved again");
    const rule = await ruleForPeriod(ctx.sequelize, programme.id, run.period, transaction);
    const stale =
      rule?.id !== run.ruleId
        ? ["the rule that governs the period changed"]
        : payoutDifferences(
            await storedPayoutLines(ctx.sequelize, run.id, transaction),
            await payoutLinesFromSales(ctx.sequelize, programme.id, run.period, termsOf(rule), transaction),
          );
    if (stale.length > 0) {
      throw new HttpError(
        409,
        `The sales or the payout rule of ${run.period} changed after these payouts were computed (${stale.slice(0, 3).join("; ")}${stale.length > 3 ? "; …" : ""}): recompute, review, then approve.`,
      );
    }
    await run.update({ status: "approved", approvedBy: actorLabel(actor), approvedAt: new Date() }, { transaction });
    await ctx.models.events.append(
      { actor: actorLabel(actor), action: "payout.run.approve", target: `payout_run:${run.id}`, detail: { programmeId: programme.id, period: run.period } },
      transaction,
    );
    return run;
  });
}
