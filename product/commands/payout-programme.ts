import type { Transaction } from "sequelize";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import type { Programme } from "../models/programme.ts";
import type { ProductContext } from "../product-context.ts";

/**
 * Lock a sales-incentive programme for the rest of the transaction. Every payout command takes this lock first,
 * so a sales import, a computation and an approval of the same programme never interleave.
 */
export async function lockSalesProgramme(ctx: ProductContext, programmeId: number, transaction: Transaction): Promise<Programme> {
  const programme = await ctx.models.Programme.findByPk(programmeId, { transaction, lock: transaction.LOCK.UPDATE });
  if (!programme) throw new HttpError(404, `There is no programme with id ${programmeId}.`);
  if (programme.kind !== "sales_incentive")
    throw new BadRequestError(`"${programme.name}" is a ${programme.kind} programme: payouts are for sales-incentive programmes only.`);
  return programme;
}
