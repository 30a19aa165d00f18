import type { Request } from "express";
import QRCode from "qrcode";
import type { ProductContext } from "./product-context.ts";

/**
 * Where participants and merchants reach the product: the configured public URL, else the address this
 * request came in on (behind the edge proxy, its X-Forwarded-Proto and -Host, trusted from loopback).
 */
export function productBaseUrl(ctx: Pick<ProductContext, "publicUrl">, req: Request): string {
  return (ctx.publicUrl ?? `${req.protocol}://${req.host}`).replace(/\/+$/, "");
}

/** A voucher's shareable URL: it works printed, forwarded or scanned, without signing in. */
export function voucherShareUrl(baseUrl: string, shareToken: string): string {
  return `${baseUrl}/v/${encodeURIComponent(shareToken)}`;
}

// Medium error correction survives a crumpled print-out; a 4-module quiet zone is what scanners expect.
const QR_OPTIONS = { errorCorrectionLevel: "M", margin: 4 } as const;

export function voucherQrSvg(url: string): Promise<string> {
  return QRCode.toString(url, { ...QR_OPTIONS, type: "svg" });
}

export function voucherQrPng(url: string): Promise<Buffer> {
  return QRCode.toBuffer(url, { ...QR_OPTIONS, type: "png", width: 480 });
}
