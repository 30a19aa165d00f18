import { Op } from "sequelize";
import type { RefusalReason } from "../commands/voucher-redeemer.ts";
import type { Voucher } from "../models/voucher.ts";
import type { ProductContext } from "../product-context.ts";

/** The HTTP status of each refusal, the same for the POS API and the merchant's page. */
export const REFUSAL_STATUS: Record<RefusalReason, number> = { not_valid_here: 404, already_redeemed: 409, expired: 410, cancelled: 410 };

export interface VoucherNames {
  item: string;
  merchant: string;
}

/** Item and merchant names of some vouchers (one query each), keyed by voucher id. */
export async function voucherNames(ctx: ProductContext, vouchers: Voucher[]): Promise<Map<number, VoucherNames>> {
  const [items, merchants] = await Promise.all([
    ctx.models.CatalogueItem.findAll({ where: { id: { [Op.in]: [...new Set(vouchers.map((v) => v.itemId))] } }, attributes: ["id", "name"] }),
    ctx.models.Merchant.findAll({ where: { id: { [Op.in]: [...new Set(vouchers.map((v) => v.merchantId))] } }, attributes: ["id", "name"] }),
  ]);
  const itemName = new Map(items.map((i) => [i.id, i.name]));
  const merchantName = new Map(merchants.map((m) => [m.id, m.name]));
  return new Map(
    vouchers.map((v) => [
      v.id,
      { item: itemName.get(v.itemId) ?? `item #${v.itemId}`, merchant: merchantName.get(v.merchantId) ?? `merchant #${v.merchantId}` },
    ]),
  );
}

function stateOf(v: Voucher, now: Date): "valid" | "expired" | "redeemed" | "cancelled" {
  if (v.status === "issued") return v.expiresAt <= now ? "expired" : "valid";
  return v.status;
}

const STATE_LABELS = { valid: "Valid", expired: "Expired", redeemed: "Redeemed", cancelled: "Cancelled" };

/** A voucher for pages: what a participant, a cashier or anyone holding the link may see. */
export function presentVoucher(v: Voucher, names: VoucherNames, links: { shareUrl?: string } = {}) {
  const state = stateOf(v, new Date());
  return {
    id: v.id,
    code: v.code,
    state,
    stateLabel: STATE_LABELS[state],
    valid: state === "valid",
    itemName: names.item,
    merchantName: names.merchant,
    pointsCost: v.pointsCost,
    issuedAt: v.issuedAt,
    expiresAt: v.expiresAt,
    redeemedAt: v.redeemedAt,
    qrSvgPath: `/v/${encodeURIComponent(v.shareToken)}/qr.svg`,
    qrPngPath: `/v/${encodeURIComponent(v.shareToken)}/qr.png`,
    shareUrl: links.shareUrl,
  };
}

/** A voucher for the POS API: no participant data and no share token. */
export function presentPosVoucher(v: Voucher, itemName: string) {
  return {
    code: v.code,
    status: v.status,
    item: { id: v.itemId, name: itemName },
    pointsCost: v.pointsCost,
    issuedAt: v.issuedAt.toISOString(),
    expiresAt: v.expiresAt.toISOString(),
    redeemedAt: v.redeemedAt ? v.redeemedAt.toISOString() : null,
  };
}
