import { createHash } from "node:crypto";
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

/** Requests with a missing or refused API key allowed per minute and address. */
export const POS_AUTH_FAILURES_PER_MINUTE = 30;

const redeemBody = z.object({ code: z.string().min(1).max(64) });
const CODE_SHAPE = 'Send JSON {"code": "XXXX-XXXX-XXXX"} with Content-Type: application/json.';

/** The merchant whose API key authenticated this request, as the actor of the commands it runs. */
function posCaller(res: Response): { merchant: Merchant; actor: ProductActor } {
  return res.locals.pos as { merchant: Merchant; actor: ProductActor };
}

/**
 * Failures per key in fixed windows. Only failures count (a limiter that counts every request and forgives the
 * good ones would refuse a burst of good requests arriving together); the map is emptied at each window.
 */
function failureCounter(windowMs: number, limit: number) {
  let windowStart = Date.now();
  let counts = new Map<string, number>();
  const roll = () => {
    if (Date.now() - windowStart >= windowMs) {
      windowStart = Date.now();
      counts = new Map();
    }
  };
  return {
    exceeded(key: string): boolean {
      roll();
      return (counts.get(key) ?? 0) >= limit;
    },
    add(key: string): void {
      roll();
      counts.set(key, (counts.get(key) ?? 0) + 1);
    },
  };
}

/** The API key of an `Authorization: Bearer pk_…` header (the scheme in any case, any spaces), or undefined. */
export function posKeyOf(header: string | undefined): string | undefined {
  return /^\s*Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
}

const TOO_MANY_FAILURES = "Too many requests with a missing or refused API key from your address. Wait a minute and try again with the merchant's current key.";

function posAuthentication(ctx: ProductContext, failures: ReturnType<typeof failureCounter>): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const address = `ip:${ipKeyGenerator(req.ip ?? "")}`;
    if (failures.exceeded(address)) return next(new HttpError(429, TOO_MANY_FAILURES));
    const key = posKeyOf(req.get("authorization"));
    res.set("www-authenticate", 'Bearer realm="plum-pos"');
    if (!key) {
      failures.add(address);
      return next(new HttpError(401, "No API key: send the merchant's POS API key as the header 'Authorization: Bearer pk_…'."));
    }
    const merchant = await merchantByApiKey(ctx, key);
    // Asked again after the lookup: guesses sent all at once get no answer that tells a valid key once the
    // address's budget is spent by those that finished first.
    if (failures.exceeded(address)) return next(new HttpError(429, TOO_MANY_FAILURES));
    if (!merchant) {
      failures.add(address);
      return next(
        new HttpError(
          401,
          "This API key is not valid: it may have been rotated or the merchant disabled. Ask the programme manager for the merchant's current key.",
        ),
      );
    }
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
 * redeeming it (404 for a code that does not exist and for another merchant's alike, else 200 with `redeemable` and, if not, the reason).
 */
export function posApiRoutes(router: Router, ctx: ProductContext) {
  // Per API key (a merchant's tills often share one address): generous for a busy merchant, far too few
  // requests to sweep a 60-bit code space with a stolen key. Keyed on the key itself, however the header spells
  // the scheme and spaces, and hashed so the limiter's memory holds no key.
  const limiter = rateLimit({
    windowMs: 60_000,
    limit: ctx.posRateLimitPerMinute ?? 6000,
    keyGenerator: (req) => {
      const key = posKeyOf(req.get("authorization"));
      return key ? `key:${createHash("sha256").update(key).digest("hex")}` : `ip:${ipKeyGenerator(req.ip ?? "")}`;
    },
    standardHeaders: "draft-7",
    legacyHeaders: false,
    handler: (_req, _res, next) => next(new HttpError(429, "Too many POS requests with this API key. Wait a minute and try again.")),
  });
  // Refused API keys per address: a made-up key is a bucket of its own above, so guessing keys is limited here.
  const failures = failureCounter(60_000, POS_AUTH_FAILURES_PER_MINUTE);
  router.use("/pos", limiter, posAuthentication(ctx, failures));

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
