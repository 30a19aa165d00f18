import type { Sequelize } from "sequelize";
import { defineAuthModels } from "../../lib/http/auth/auth-models.ts";
import { defineCatalogueItem } from "./catalogue-item.ts";
import { defineLedgerEntry } from "./ledger-entry.ts";
import { defineMerchant } from "./merchant.ts";
import { defineParticipant } from "./participant.ts";
import { defineProductEvent } from "./product-event.ts";
import { defineProgramme } from "./programme.ts";
import { defineVoucher } from "./voucher.ts";

export const PRODUCT_ROLES = ["manager", "participant", "merchant"] as const;
export type ProductRole = (typeof PRODUCT_ROLES)[number];

/** Every model of the product database ("plum"): columns and validators only. */
export function defineProductModels(sequelize: Sequelize) {
  const auth = defineAuthModels(sequelize, {
    name: "Product",
    users: "product_users",
    sessions: "product_sessions",
    attempts: "product_login_attempts",
    roles: PRODUCT_ROLES,
    usernamePattern: /^[^\s@]{1,64}@[^\s@]{1,190}$/,
  });
  const { ProductEvent, events } = defineProductEvent(sequelize);
  return {
    auth,
    events,
    ProductEvent,
    Programme: defineProgramme(sequelize),
    Participant: defineParticipant(sequelize),
    LedgerEntry: defineLedgerEntry(sequelize),
    ...defineMerchant(sequelize),
    CatalogueItem: defineCatalogueItem(sequelize),
    Voucher: defineVoucher(sequelize),
  };
}

export type ProductModels = ReturnType<typeof defineProductModels>;
