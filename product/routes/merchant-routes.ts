import type { Response, Router } from "express";
import { z } from "zod";
import { signedIn } from "../../lib/http/auth/session-auth.ts";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import { voucherRedeemer } from "../commands/voucher-redeemer.ts";
import type { Merchant } from "../models/merchant.ts";
import { authorize } from "../policies.ts";
import { REFUSAL_STATUS, voucherNames } from "../presenters/voucher-presenter.ts";
import type { ProductActor, ProductContext } from "../product-context.ts";

const validateForm = z.object({ code: z.string().max(64).default("") });

/** The merchant a staff account works for (merchant_users); refused if there is none or it is disabled. */
async function staffMerchant(ctx: ProductContext, actor: ProductActor): Promise<Merchant> {
  const link = await ctx.models.MerchantUser.findByPk(actor.id);
  const merchant = link && (await ctx.models.Merchant.findByPk(link.merchantId));
  if (!merchant) throw new HttpError(403, "Your account is not linked to a merchant. Ask your programme manager to link it.");
  if (merchant.disabledAt) throw new HttpError(403, `${merchant.name} is disabled: its vouchers cannot be redeemed. Ask your programme manager.`);
  return merchant;
}

/** Merchant staff at the till: type the code from a voucher (or its print-out) and redeem it. */
export function merchantRoutes(router: Router, ctx: ProductContext) {
  const render = (res: Response, merchant: Merchant, extra: Record<string, unknown> = {}, status = 200) =>
    res.status(status).render("product/merchant/validate", { title: "Validate a voucher", merchantName: merchant.name, ...extra });

  router.get("/merchant", async (_req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "validate", "Voucher");
    render(res, await staffMerchant(ctx, actor));
  });

  router.post("/merchant/validate", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "validate", "Voucher");
    const merchant = await staffMerchant(ctx, actor);
    const form = validateForm.parse(req.body ?? {});
    try {
      const result = await voucherRedeemer({ ctx, actor, input: { merchantId: merchant.id, code: form.code } });
      if (!result.ok) {
        render(res, merchant, { refused: { reason: result.reason, message: result.message } }, REFUSAL_STATUS[result.reason]);
        return;
      }
      const names = await voucherNames(ctx, [result.voucher]);
      render(res, merchant, { redeemed: { code: result.voucher.code, itemName: names.get(result.voucher.id)!.item, pointsCost: result.voucher.pointsCost } });
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      render(res, merchant, { error: err.message, fields: err.fields, form }, 400);
    }
  });
}
