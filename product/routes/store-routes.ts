import { randomBytes } from "node:crypto";
import type { Response, Router } from "express";
import { Op } from "sequelize";
import { z } from "zod";
import { signedIn } from "../../lib/http/auth/session-auth.ts";
import { HttpError } from "../../lib/http/http-errors.ts";
import { itemRedeemer } from "../commands/item-redeemer.ts";
import { balanceOf } from "../commands/ledger.ts";
import type { Participant } from "../models/participant.ts";
import { authorize } from "../policies.ts";
import { presentItem } from "../presenters/catalogue-presenter.ts";
import { presentVoucher, voucherNames } from "../presenters/voucher-presenter.ts";
import type { ProductActor, ProductContext } from "../product-context.ts";
import { productBaseUrl, voucherShareUrl } from "../voucher-qr.ts";

const redeemForm = z.object({ itemId: z.coerce.number().int().positive(), requestKey: z.string().max(100).default("") });
const id = z.coerce.number().int().positive();

/** Refusals of a redemption the participant can act on: shown on the store page, not as an error page. */
const SHOWN_ON_STORE = new Set([400, 404, 409]);

async function ownParticipant(ctx: ProductContext, actor: ProductActor): Promise<Participant> {
  const participant = await ctx.models.Participant.findOne({ where: { userId: actor.id } });
  if (!participant) throw new HttpError(403, "Your account is not linked to a participant record. Ask your programme manager to link it.");
  return participant;
}

/** The participant's storefront: balance, what there is to spend points on, and their vouchers. */
export function storeRoutes(router: Router, ctx: ProductContext) {
  const renderStore = async (res: Response, participant: Participant, extra: Record<string, unknown> = {}, status = 200) => {
    const [balance, items] = await Promise.all([
      balanceOf(ctx, participant.id),
      ctx.models.CatalogueItem.findAll({
        where: { active: true, stock: { [Op.gt]: 0 } },
        order: [
          ["pointsCost", "ASC"],
          ["name", "ASC"],
        ],
      }),
    ]);
    const merchants = await ctx.models.Merchant.findAll({ where: { id: { [Op.in]: [...new Set(items.map((i) => i.merchantId))] }, disabledAt: null } });
    const merchantName = new Map(merchants.map((m) => [m.id, m.name]));
    const offered = items
      .filter((i) => merchantName.has(i.merchantId))
      // One key per form: the same form sent twice is one redemption, two forms are two.
      .map((i) => ({ ...presentItem(i, merchantName.get(i.merchantId)!, balance), requestKey: randomBytes(16).toString("base64url") }));
    res.status(status).render("product/store/index", { title: "Store", firstName: participant.name.split(/\s+/)[0], balance, items: offered, ...extra });
  };

  router.get("/store", async (_req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "read", "Storefront");
    await renderStore(res, await ownParticipant(ctx, actor));
  });

  router.post("/store/redeem", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "redeem", "Catalogue");
    const participant = await ownParticipant(ctx, actor);
    try {
      const form = redeemForm.parse(req.body ?? {});
      const { voucher } = await itemRedeemer({ ctx, actor, input: { participantId: participant.id, itemId: form.itemId, requestKey: form.requestKey } });
      res.redirect(303, `/store/vouchers/${voucher.id}`);
    } catch (err) {
      if (!(err instanceof HttpError && SHOWN_ON_STORE.has(err.status))) throw err;
      await renderStore(res, participant, { error: err.message, fields: (err.extra.fields as Record<string, string>) ?? undefined }, err.status);
    }
  });

  router.get("/store/vouchers", async (_req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "read", "Voucher");
    const participant = await ownParticipant(ctx, actor);
    const vouchers = await ctx.models.Voucher.findAll({
      where: { participantId: participant.id },
      order: [
        ["issuedAt", "DESC"],
        ["id", "DESC"],
      ],
    });
    const names = await voucherNames(ctx, vouchers);
    res.render("product/store/vouchers", { title: "My vouchers", vouchers: vouchers.map((v) => presentVoucher(v, names.get(v.id)!)) });
  });

  router.get("/store/vouchers/:id", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "read", "Voucher");
    const participant = await ownParticipant(ctx, actor);
    const voucherId = id.safeParse(req.params.id);
    const voucher = voucherId.success ? await ctx.models.Voucher.findOne({ where: { id: voucherId.data, participantId: participant.id } }) : null;
    if (!voucher) throw new HttpError(404, "You have no voucher with this number. Your vouchers are listed under My vouchers.");
    const names = await voucherNames(ctx, [voucher]);
    const shareUrl = voucherShareUrl(productBaseUrl(ctx, req), voucher.shareToken);
    res.render("product/voucher/show", {
      title: "Your voucher",
      owner: true,
      voucher: presentVoucher(voucher, names.get(voucher.id)!, { shareUrl }),
    });
  });
}
