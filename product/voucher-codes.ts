import { randomBytes } from "node:crypto";

const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"; // 32 symbols, none that read alike (0/O, 1/I/L)

/** The code typed or scanned at the till: 12 symbols (60 bits), shown as XXXX-XXXX-XXXX. */
export function newVoucherCode(): string {
  const bytes = randomBytes(12);
  const chars = [...bytes].map((b) => ALPHABET[b % 32]).join("");
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}`;
}

/** Normalise what a cashier typed: case, spaces and dashes do not matter. */
export function normaliseVoucherCode(input: string): string {
  const raw = input.toUpperCase().replace(/[\s-]/g, "");
  return raw.length === 12 ? `${raw.slice(0, 4)}-${raw.slice(4, 8)}-${raw.slice(8, 12)}` : raw;
}

/** The unguessable part of a voucher's shareable URL: 256 bits. */
export function newShareToken(): string {
  return randomBytes(32).toString("base64url");
}

export const VOUCHER_VALIDITY_DAYS = 180;
