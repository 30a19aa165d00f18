import { definePolicies } from "../lib/http/policies.ts";

export type Action = "read" | "create" | "update" | "import" | "redeem" | "validate" | "approve" | "export";
export type Subject = "Programme" | "Participant" | "Ledger" | "Merchant" | "Catalogue" | "Voucher" | "Payout" | "Storefront";

const policies = definePolicies<Action, Subject>({
  verbs: { read: "view", create: "create", update: "change", import: "import", redeem: "redeem", validate: "validate", approve: "approve", export: "export" },
  nouns: {
    Programme: "programmes",
    Participant: "participants",
    Ledger: "points",
    Merchant: "merchants",
    Catalogue: "the catalogue",
    Voucher: "vouchers",
    Payout: "payouts",
    Storefront: "the storefront",
  },
  whoToAsk: "Ask your programme manager if you need this.",
});

// Programme managers run the programmes: participants, points, merchants, catalogue, payouts.
policies.allow("manager", ["read", "create", "update", "import", "export"], ["Programme", "Participant", "Ledger", "Merchant", "Catalogue", "Payout"]);
policies.allow("manager", ["approve"], ["Payout"]);
policies.allow("manager", ["read"], ["Voucher"]);
// Participants spend their points in the storefront and see their own vouchers.
policies.allow("participant", ["read"], ["Storefront", "Catalogue"]);
policies.allow("participant", ["redeem"], ["Catalogue"]);
policies.allow("participant", ["read"], ["Voucher"]);
// Merchant staff validate their merchant's vouchers at the till.
policies.allow("merchant", ["validate"], ["Voucher"]);

export const { can, authorize } = policies;
