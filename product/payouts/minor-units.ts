/**
 * Money and rates as integers: amounts in minor units (cents), rates and attainment in basis points (1 bp =
 * 0.01 %). Nothing here goes through a floating-point number, so 0.1 + 0.2 never happens to a payout.
 */

/** The largest quota, sales or cap we accept: 10^12 minor units (ten billion euros), far inside bigint. */
export const MAX_MINOR = 10n ** 12n;

export const BP_PER_UNIT = 10_000n;

/**
 * numerator / denominator (both ≥ 0) rounded half down to an integer: a fraction of exactly one half goes down,
 * anything above goes up. Payouts use it so that a tie never pays out a minor unit nobody earned.
 */
export function divideRoundHalfDown(numerator: bigint, denominator: bigint): bigint {
  if (numerator < 0n || denominator <= 0n)
    throw new RangeError(`divideRoundHalfDown needs numerator ≥ 0 and denominator > 0 (got ${numerator} / ${denominator})`);
  const quotient = numerator / denominator;
  const remainder = numerator % denominator;
  return remainder * 2n > denominator ? quotient + 1n : quotient;
}

/** Digits after the decimal point of a currency's major unit (EUR 2, JPY 0, BHD 3), from the runtime's ISO 4217 data. */
export function currencyExponent(currency: string): number {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

/** An integer scaled down by 10^scale, written with exactly `scale` decimals: (123456n, 2) → "1234.56". */
export function formatScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = scale > 0 ? `.${digits.slice(digits.length - scale)}` : "";
  return `${negative ? "-" : ""}${whole}${fraction}`;
}

/** Minor units as major units of the currency: (105000n, "EUR") → "1050.00". */
export function formatMinor(amountMinor: bigint, currency: string): string {
  return formatScaled(amountMinor, currencyExponent(currency));
}

/** Basis points as a percentage with two decimals: 10250n → "102.50". */
export function formatBpAsPercent(bp: bigint | number): string {
  return formatScaled(BigInt(bp), 2);
}

/**
 * A decimal typed by a person ("12.5", "1,000.00" is refused, "0.75") as an integer scaled up by 10^scale:
 * ("12.5", 2) → 1250n. Undefined when it is not a non-negative decimal with at most `scale` decimals.
 */
export function parseScaled(text: string, scale: number): bigint | undefined {
  const match = /^(\d{1,15})(?:\.(\d+))?$/.exec(text.trim());
  if (!match) return undefined;
  const fraction = match[2] ?? "";
  if (fraction.length > scale) return undefined;
  return BigInt(match[1] + fraction.padEnd(scale, "0"));
}

/** A whole number of minor units as written in a CSV file ("125000"), within 0..MAX_MINOR. */
export function parseMinor(text: string): bigint | undefined {
  if (!/^\d{1,13}$/.test(text)) return undefined;
  const value = BigInt(text);
  return value <= MAX_MINOR ? value : undefined;
}
