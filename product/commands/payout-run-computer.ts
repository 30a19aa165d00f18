import type { Transaction } from "sequelize";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import { definePayoutModels, PERIOD_PATTERN, type PayoutRun } from "../models/payout-models.ts";
import type { Programme } from "../models/programme.ts";
import { payoutLinesFromSales, ruleForPeriod, termsOf } from "../payouts/payout-lines.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";
import { lockSalesProgramme } from "./payout-programme.ts";

/** The 409 for any change to an approved (or exported) run. */
export function frozenRunError(programme: Programme, run: PayoutRun, attempted: string): HttpError {
  const when = run.approvedAt ? run.approvedAt.toISOString().slice(0, 10) : "an earlier date";
  return new HttpError(
    409,
    `The payouts of "${programme.name}" for ${run.period} were approved by ${run.approvedBy} on ${when} and are frozen: they cannot be ${attempted}.`,
  );
}

/** Lock the programme, then its run (by run id), for a command on an existing run. */
export async function lockRun(ctx: ProductContext, runId: number, transaction: Transaction): Promise<{ run: PayoutRun; programme: Programme }> {
  const { PayoutRun } = definePayoutModels(ctx.sequelize);
  const found = await PayoutRun.findByPk(runId, { transaction });
  if (!found) throw new HttpError(404, `There is no payout run with id ${runId}.`);
  const programme = await lockSalesProgramme(ctx, found.programmeId, transaction);
  const run = (await PayoutRun.findByPk(runId, { transaction, lock: transaction.LOCK.UPDATE }))!;
  return { run, programme };
}

/**
 * Compute (or recompute) the payouts of a programme's period from its stored sales and the rule that governs the
 * period. A run can be recomputed as often as needed until it is approved; then it is frozen (409).
 */
export async function payoutRunComputer(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { programmeId: number; period: string };
}): Promise<PayoutRun> {
  const { ctx, actor, input } = props;
  authorize(actor, "create", "Payout");
  if (!PERIOD_PATTERN.test(input.period)) throw new BadRequestError("The payouts were not computed.", { period: "a month as YYYY-MM, e.g. 2025-01" });
  const { PayoutRun, Payout } = definePayoutModels(ctx.sequelize);
  return ctx.sequelize.transaction(async (transaction) => {
    const programme = await lockSalesProgramme(ctx, input.programmeId, transaction);
    const existing = await PayoutRun.findOne({ where: { programmeId: programme.id, period: input.period }, transaction });
    if (existing && existing.status !== "computed") throw frozenRunError(programme, existing, "recomputed");
    const rule = await ruleForPeriod(ctx.sequelize, programme.id, input.period, transaction);
    if (!rule)
      throw new BadRequestError(`No payout rule applies to ${input.period}: save a rule that takes effect in ${input.period} or earlier.`, {
        period: input.period,
      });
    const lines = await payoutLinesFromSales(ctx.sequelize, programme.id, input.period, termsOf(rule), transaction);
    if (lines.length === 0) throw new BadRequestError(`No sales are recorded for ${input.period}: upload the sales file first.`, { period: input.period });

    const by = { ruleId: rule.id, computedBy: actorLabel(actor), computedAt: new Date() };
    let run: PayoutRun;
    if (existing) {
      await Payout.destroy({ where: { runId: existing.id }, transaction });
      run = await existing.update(by, { transaction });
    } else {
      run = await PayoutRun.create({ programmeId: programme.id, period: input.period, ...by }, { transaction });
    }
    await Payout.bulkCreate(
      lines.map((l) => ({
        runId: run.id,
        participantId: l.participantId,
        attainmentBp: l.attainmentBp.toString(),
        amountMinor: l.amountMinor.toString(),
        detail: l.detail,
      })),
      { transaction },
    );
    const totalMinor = lines.reduce((sum, l) => sum + l.amountMinor, 0n);
    await ctx.models.events.append(
      {
        actor: actorLabel(actor),
        action: "payout.run.compute",
        target: `payout_run:${run.id}`,
        detail: {
          programmeId: programme.id,
          period: input.period,
          ruleId: rule.id,
          payouts: lines.length,
          totalMinor: totalMinor.toString(),
          recomputed: !!existing,
        },
      },
      transaction,
    );
    return run;
  });
}
