import { QueryTypes } from "sequelize";
import { BadRequestError } from "../../lib/http/http-errors.ts";
import type { Voucher } from "../models/voucher.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";
import { normaliseVoucherCode } from "../voucher-codes.ts";

/**
 * Why a code does not redeem here. `not_valid_here` is both "no such code" and "another merchant's code": a
 * merchant's key must not be able to tell them apart, or it could probe which codes exist at other merchants.
 */
export const REFUSAL_REASONS = ["not_valid_here", "already_redeemed", "expired", "cancelled"] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export type VoucherCheck =
  | { ok: true; voucher: Voucher }
  | {
      ok: false;
      reason: RefusalReason;
      message: string;
      voucher?: Voucher;
      /** For the product's own event log only. */ cause?: "unknown_code" | "other_merchant";
    };

interface RedeemInput {
  /** The merchant at whose till the code is presented (from its API key, or its staff member's account). */
  merchantId: number;
  /** As typed or scanned: case, spaces and dashes do not matter. */
  code: string;
}

function readCode(raw: string): string {
  const code = normaliseVoucherCode(raw.trim());
  if (!/^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(code)) {
    throw new BadRequestError("The voucher was not checked.", { code: "12 letters and digits, as printed on the voucher: XXXX-XXXX-XXXX" });
  }
  return code;
}

function notValidHere(code: string): string {
  return `Voucher ${code} is not valid at this merchant. Check the code and type it again; a voucher redeems only at the merchant it was issued for.`;
}

function when(d: Date): string {
  return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

/**
 * Why this merchant may not redeem this voucher now, in words a cashier can repeat to the customer; or
 * undefined when it may. Another merchant's voucher reads exactly as a code that does not exist. `expired` is decided by
 * the database's clock, as the redeeming UPDATE is.
 */
async function refusalOf(ctx: ProductContext, code: string, merchantId: number): Promise<VoucherCheck> {
  const voucher = await ctx.models.Voucher.findOne({ where: { code } });
  if (!voucher || voucher.merchantId !== merchantId) {
    return { ok: false, reason: "not_valid_here", message: notValidHere(code), cause: voucher ? "other_merchant" : "unknown_code" };
  }
  if (voucher.status === "redeemed") {
    return {
      ok: false,
      reason: "already_redeemed",
      voucher,
      message: `Voucher ${code} was already redeemed on ${when(voucher.redeemedAt!)}. A voucher can be redeemed only once.`,
    };
  }
  if (voucher.status === "cancelled") return { ok: false, reason: "cancelled", voucher, message: `Voucher ${code} was cancelled and cannot be redeemed.` };
  const [{ expired }] = await ctx.sequelize.query<{ expired: boolean }>("select :expiresAt::timestamptz <= now() as expired", {
    replacements: { expiresAt: voucher.expiresAt },
    type: QueryTypes.SELECT,
  });
  if (expired)
    return { ok: false, reason: "expired", voucher, message: `Voucher ${code} expired on ${when(voucher.expiresAt)} and can no longer be redeemed.` };
  return { ok: true, voucher };
}

/** Merchant staff (or their POS) check a code without redeeming it: would it redeem here, now? */
export async function voucherChecker(props: { ctx: ProductContext; actor: ProductActor; input: RedeemInput }): Promise<VoucherCheck> {
  const { ctx, actor, input } = props;
  authorize(actor, "validate", "Voucher");
  return refusalOf(ctx, readCode(input.code), input.merchantId);
}

/**
 * A merchant validates and redeems a voucher code at the till. A code redeems exactly once, also when
 * several tills (or a double-clicked button) present it at the same moment: one UPDATE flips it from
 * issued to redeemed only while it is still issued, unexpired and this merchant's. PostgreSQL makes
 * concurrent UPDATEs of the row wait for the first to commit and then re-check the WHERE, so exactly one
 * gets the row back. Whoever gets nothing back is told why. Every attempt is recorded as a product event.
 */
export async function voucherRedeemer(props: { ctx: ProductContext; actor: ProductActor; input: RedeemInput }): Promise<VoucherCheck> {
  const { ctx, actor, input } = props;
  authorize(actor, "validate", "Voucher");
  const code = readCode(input.code);
  const { merchantId } = input;
  // One statement, so one round trip and atomic without an explicit transaction: flip the voucher and record
  // the event together (this is the till's hot path).
  const [redeemed] = await ctx.sequelize.query(
    `with redeemed as (
       update vouchers set status = 'redeemed', redeemed_at = now(), redeemed_by_merchant_id = :merchantId
        where code = :code and status = 'issued' and merchant_id = :merchantId and expires_at > now()
        returning *),
     event as (
       insert into product_events (actor, action, target, detail)
       select :actor, 'voucher.redeem', 'voucher:' || id, jsonb_build_object('merchantId', merchant_id, 'itemId', item_id) from redeemed)
     select * from redeemed`,
    { replacements: { code, merchantId, actor: actorLabel(actor) }, model: ctx.models.Voucher, mapToModel: true },
  );
  if (redeemed) return { ok: true, voucher: redeemed };

  // States only move away from "issued" and the clock only forward, so the reason seen now is the reason.
  const refusal = await refusalOf(ctx, code, merchantId);
  // The code is a credential: the error (logged) names the voucher by id.
  if (refusal.ok) throw new Error(`voucher #${refusal.voucher.id} is redeemable but the redeeming UPDATE matched no row`);
  await ctx.models.events.append({
    actor: actorLabel(actor),
    action: "voucher.redeem",
    target: refusal.voucher ? `voucher:${refusal.voucher.id}` : undefined,
    outcome: "failure",
    detail: { merchantId, reason: refusal.cause ?? refusal.reason, code },
  });
  return refusal;
}
