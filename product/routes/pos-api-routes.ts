import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response, Router } from "express";
import { ipKeyGenerator, rateLimit } from "express-rate-limit";
import { z } from "zod";
import { HttpError } from "../../lib/http/http-errors.ts";
import { merchantByApiKey } from "../commands/merchant-commands.ts";
import { voucherChecker, voucherRedeemer } from "../commands/voucher-redeemer.ts";
import type { Merchant } from "../models/merchant.ts";
import type { Voucher } from "../models/voucher.ts";
import { presentPosVoucher, REFUSAL_STATUS } from "../presenters/voucher-presenter.ts";
import type { ProductActor, ProductContext } from "../product-context.ts";

const redeemBody = z.object({ code: z.string().min(1).max(64) });
const CODE_SHAPE = 'Send JSON {"code": "XXXX-XXXX-XXXX"} with Content-Type: application/json.';

/** The merchant whose API key authenticated this request, as the actor of the commands it runs. */
function posCaller(res: Response): { merchant: Merchant; actor: ProductActor } {
  return res.locals.pos as { merchant: Merchant; actor: ProductActor };
}

function posAuthentication(ctx: ProductContext): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const header = req.get("authorization") ?? "";
    const key = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    res.set("www-authenticate", 'Bearer realm="plum-pos"');
    if (!key) return next(new HttpError(401, "No API key: send the merchant's POS API key as the header 'Authorization: Bearer pk_…'."));
    const merchant = await merchantByApiKey(ctx, key);
    if (!merchant)
      return next(
        new HttpError(
          401,
          "This API key is not valid: it may have been rotated or the merchant disabled. Ask the programme manager for the merchant's current key.",
        ),
      );
    res.removeHeader("www-authenticate");
    res.locals.pos = { merchant, actor: { id: 0, username: `pos:merchant:${merchant.id}`, role: "merchant" } };
    next();
  };
}

/** POS clients get JSON whatever they send in Accept, also for a body that is not JSON. */
const posErrors: ErrorRequestHandler = (err, _req, res, next) => {
  if (err instanceof HttpError) return res.status(err.status).json({ error: err.message, ...err.extra });
  const parserError = err as { status?: number; expose?: boolean; type?: string };
  if (parserError.expose && typeof parserError.status === "number" && parserError.status < 500) {
    return res
      .status(parserError.status)
      .json({ error: parserError.type === "entity.parse.failed" ? `The request body is not valid JSON. ${CODE_SHAPE}` : String((err as Error).message) });
  }
  next(err);
};

async function posVoucher(ctx: ProductContext, voucher: Voucher) {
  const item = await ctx.models.CatalogueItem.findByPk(voucher.itemId, { attributes: ["name"] });
  return presentPosVoucher(voucher, item?.name ?? `item #${voucher.itemId}`);
}

/**
 * The merchant POS API, authenticated by the merchant's API key (`Authorization: Bearer pk_…`):
 * POST /api/pos/redeem redeems a code exactly once; GET /api/pos/vouchers/:code checks one without
 * redeeming it (404 unknown, 403 another merchant's, else 200 with `redeemable` and, if not, the reason).
 */
export function posApiRoutes(router: Router, ctx: ProductContext) {
  // Per API key (a merchant's tills often share one address): generous for a busy merchant, far too few
  // requests to sweep a 60-bit code space with a stolen key.
  const limiter = rateLimit({
    windowMs: 60_000,
    limit: ctx.posRateLimitPerMinute ?? 6000,
    keyGenerator: (req) => (req.get("authorization") ?? "").slice(0, 20) || `ip:${ipKeyGenerator(req.ip ?? "")}`,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    handler: (_req, _res, next) => next(new HttpError(429, "Too many POS requests with this API key. Wait a minute and try again.")),
  });
  router.use("/pos", limiter, posAuthentication(ctx));

  router.post("/pos/redeem", async (req, res) => {
    const { merchant, actor } = posCaller(res);
    const body = redeemBody.safeParse(req.body ?? {});
    if (!body.success) throw new HttpError(400, `The voucher code is missing. ${CODE_SHAPE}`);
    const result = await voucherRedeemer({ ctx, actor, input: { merchantId: merchant.id, code: body.data.code } });
    if (!result.ok) {
      res.status(REFUSAL_STATUS[result.reason]).json({ redeemed: false, reason: result.reason, error: result.message });
      return;
    }
    res.json({ redeemed: true, voucher: await posVoucher(ctx, result.voucher) });
  });

  router.get("/pos/vouchers/:code", async (req, res) => {
    const { merchant, actor } = posCaller(res);
    const result = await voucherChecker({ ctx, actor, input: { merchantId: merchant.id, code: String(req.params.code) } });
    if (result.ok) {
      res.json({ redeemable: true, voucher: await posVoucher(ctx, result.voucher) });
    } else if (!result.voucher) {
      res.status(REFUSAL_STATUS[result.reason]).json({ redeemable: false, reason: result.reason, error: result.message });
    } else {
      res.json({ redeemable: false, reason: result.reason, error: result.message, voucher: await posVoucher(ctx, result.voucher) });
    }
  });

  router.use("/pos", posErrors);
}
