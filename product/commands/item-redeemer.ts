import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import type { Voucher } from "../models/voucher.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";
import { newShareToken, newVoucherCode, VOUCHER_VALIDITY_DAYS } from "../voucher-codes.ts";
import { balanceOf, lockParticipant } from "./ledger.ts";

/**
 * A participant spends points on a catalogue item and gets a voucher. In one transaction: the participant's
 * row is locked (concurrent redemptions queue), the balance checked, one unit of stock taken (never below
 * zero), the redemption entered in the ledger and the voucher issued with a one-time code and a share token.
 * The same `requestKey` twice (a double-clicked form) returns the first voucher.
 */
export async function itemRedeemer(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { participantId: number; itemId: number; requestKey: string };
}): Promise<{ voucher: Voucher; balance: number; replayed: boolean }> {
  const { ctx, actor, input } = props;
  authorize(actor, "redeem", "Catalogue");
  if (!/^[\w-]{8,100}$/.test(input.requestKey))
    throw new BadRequestError("The redemption was not made.", { requestKey: "is missing; reload the page and try again" });
  const idempotencyKey = `redeem:${input.participantId}:${input.requestKey}`;
  return ctx.sequelize.transaction(async (transaction) => {
    if (!(await lockParticipant(ctx, input.participantId, transaction))) throw new HttpError(404, `There is no participant with id ${input.participantId}.`);
    const earlier = await ctx.models.LedgerEntry.findOne({ where: { idempotencyKey }, transaction });
    if (earlier?.voucherId) {
      const voucher = (await ctx.models.Voucher.findByPk(earlier.voucherId, { transaction }))!;
      return { voucher, balance: await balanceOf(ctx, input.participantId, transaction), replayed: true };
    }
    const item = await ctx.models.CatalogueItem.findByPk(input.itemId, { transaction, lock: transaction.LOCK.UPDATE });
    if (!item || !item.active) throw new HttpError(404, "This item is not in the catalogue any more.");
    const balance = await balanceOf(ctx, input.participantId, transaction);
    if (balance < item.pointsCost) throw new HttpError(409, `Not enough points: ${item.name} costs ${item.pointsCost} points and your balance is ${balance}.`);
    if (item.stock < 1) throw new HttpError(409, `${item.name} is out of stock.`);
    await item.update({ stock: item.stock - 1 }, { transaction });
    const voucher = await ctx.models.Voucher.create(
      {
        participantId: input.participantId,
        itemId: item.id,
        merchantId: item.merchantId,
        pointsCost: item.pointsCost,
        code: newVoucherCode(),
        shareToken: newShareToken(),
        expiresAt: new Date(Date.now() + VOUCHER_VALIDITY_DAYS * 86400_000),
      },
      { transaction },
    );
    await ctx.models.LedgerEntry.create(
      {
        participantId: input.participantId,
        programmeId: null,
        kind: "redemption",
        points: -item.pointsCost,
        idempotencyKey,
        voucherId: voucher.id,
        note: item.name,
        createdBy: actorLabel(actor),
      },
      { transaction },
    );
    await ctx.models.events.append(
      { actor: actorLabel(actor), action: "voucher.issue", target: `voucher:${voucher.id}`, detail: { itemId: item.id, points: item.pointsCost } },
      transaction,
    );
    return { voucher, balance: balance - item.pointsCost, replayed: false };
  });
}
