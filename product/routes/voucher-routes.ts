import type { Request, Router } from "express";
import { HttpError } from "../../lib/http/http-errors.ts";
import type { Voucher } from "../models/voucher.ts";
import { presentVoucher, voucherNames } from "../presenters/voucher-presenter.ts";
import type { ProductContext } from "../product-context.ts";
import { productBaseUrl, voucherQrPng, voucherQrSvg, voucherShareUrl } from "../voucher-qr.ts";

const NOT_FOUND = "There is no voucher at this address. Check the link, or ask whoever gave it to you for a new one.";

/**
 * A voucher's shareable URL, /v/<share token>: printable, opened without signing in by whoever holds the
 * link (the token is the secret). Shows what a cashier needs and the holder's first name, nothing more.
 */
export function voucherRoutes(router: Router, ctx: ProductContext) {
  const load = async (req: Request): Promise<Voucher> => {
    const token = String(req.params.token);
    const voucher = /^[A-Za-z0-9_-]{20,100}$/.test(token) ? await ctx.models.Voucher.findOne({ where: { shareToken: token } }) : null;
    if (!voucher) throw new HttpError(404, NOT_FOUND);
    return voucher;
  };

  router.get("/v/:token", async (req, res) => {
    const voucher = await load(req);
    const [names, participant] = await Promise.all([
      voucherNames(ctx, [voucher]),
      ctx.models.Participant.findByPk(voucher.participantId, { attributes: ["name"] }),
    ]);
    const shareUrl = voucherShareUrl(productBaseUrl(ctx, req), voucher.shareToken);
    res.render("product/voucher/show", {
      title: "Voucher",
      voucher: presentVoucher(voucher, names.get(voucher.id)!, { shareUrl }),
      holderFirstName: participant?.name.trim().split(/\s+/)[0] ?? "",
    });
  });

  router.get("/v/:token/qr.svg", async (req, res) => {
    const voucher = await load(req);
    res.type("image/svg+xml").send(await voucherQrSvg(voucherShareUrl(productBaseUrl(ctx, req), voucher.shareToken)));
  });

  router.get("/v/:token/qr.png", async (req, res) => {
    const voucher = await load(req);
    res.type("image/png").send(await voucherQrPng(voucherShareUrl(productBaseUrl(ctx, req), voucher.shareToken)));
  });
}
