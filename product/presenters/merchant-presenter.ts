import type { Merchant } from "../models/merchant.ts";

export function presentMerchant(m: Merchant, staff: string[] = []) {
  return {
    id: m.id,
    name: m.name,
    contactEmail: m.contactEmail,
    keyPrefix: m.apiKeyPrefix ? `${m.apiKeyPrefix}…` : "none",
    disabled: !!m.disabledAt,
    staff,
  };
}
