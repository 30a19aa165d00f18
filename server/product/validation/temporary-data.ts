import { randomBytes } from "node:crypto";
import type { Sequelize } from "sequelize";
import { catalogueItemCreator } from "../commands/catalogue-commands.ts";
import { merchantCreator } from "../commands/merchant-commands.ts";
import { pointsAwarder } from "../commands/points-awarder.ts";
import { productUserCreator } from "../commands/product-user-creator.ts";
import { defineProductModels } from "../models/index.ts";
import { SYSTEM_ACTOR, type ProductContext } from "../product-context.ts";

export interface TemporaryShop {
  ctx: ProductContext;
  participantId: number;
  participantLogin: { username: string; password: string };
  merchantId: number;
  merchantApiKey: string;
  itemId: number;
  itemName: string;
  itemCost: number;
  startingPoints: number;
}

/** A product context over a suite's own connection (a suite runs outside the product instance). */
export function suiteContext(sequelize: Sequelize): ProductContext {
  const models = defineProductModels(sequelize);
  const security = { loginMaxFailures: 5, loginWindowSeconds: 60, lockoutSeconds: 300, loginRateLimitPerMinute: 30 };
  return { sequelize, models, auth: { sequelize, models: models.auth, audit: models.events, security, sessionHours: 1 } };
}

/**
 * A participant with points and an account, a merchant with an item: what a suite needs to shop through
 * HTTP. Everything is marked with one random tag and removed again by `removeTemporaryShop`.
 */
export async function createTemporaryShop(sequelize: Sequelize, suite: string): Promise<TemporaryShop> {
  const ctx = suiteContext(sequelize);
  const tag = `${suite}-${randomBytes(5).toString("hex")}`;
  const password = randomBytes(18).toString("base64url");
  const participant = await ctx.models.Participant.create({ employeeId: `validation-${tag}`, name: `Validation ${tag}`, email: `${tag}@validation.invalid`, department: "validation", country: "NL" });
  const account = await productUserCreator({ ctx, actor: SYSTEM_ACTOR, input: { email: `${tag}@validation.invalid`, role: "participant", participantId: participant.id, password } });
  const { merchant, apiKey } = await merchantCreator({ ctx, actor: SYSTEM_ACTOR, input: { name: `Validation merchant ${tag}` } });
  const item = await catalogueItemCreator({ ctx, actor: SYSTEM_ACTOR, input: { merchantId: merchant.id, name: `Validation item ${tag}`, pointsCost: 10, stock: 5 } });
  await pointsAwarder({ ctx, actor: SYSTEM_ACTOR, input: { participantId: participant.id, programmeId: null, kind: "award", points: 50, idempotencyKey: `validation:${tag}` } });
  return { ctx, participantId: participant.id, participantLogin: { username: account.username, password }, merchantId: merchant.id, merchantApiKey: apiKey, itemId: item.id, itemName: item.name, itemCost: 10, startingPoints: 50 };
}

/** Remove every row a temporary shop made (ledger rows through the sanctioned cleanup switch). */
export async function removeTemporaryShop(shop: TemporaryShop): Promise<void> {
  const { sequelize } = shop.ctx;
  await sequelize.transaction(async (transaction) => {
    const q = (sql: string) => sequelize.query(sql, { replacements: { p: shop.participantId, m: shop.merchantId, i: shop.itemId, u: shop.participantLogin.username }, transaction });
    await q("set local plum.ledger_cleanup = 'on'");
    await q("delete from ledger_entries where participant_id = :p");
    await q("delete from vouchers where participant_id = :p or merchant_id = :m");
    await q("delete from catalogue_items where id = :i or merchant_id = :m");
    await q("delete from product_sessions where user_id in (select id from product_users where username = :u)");
    await q("delete from product_login_attempts where username = :u");
    await q("delete from merchant_users where merchant_id = :m");
    await q("delete from participants where id = :p");
    await q("delete from product_users where username = :u");
    await q("delete from merchants where id = :m");
    await q("delete from product_events where actor in ('user:' || :u, :u) or target in ('user:' || :u, 'merchant:' || :m, 'item:' || :i) or (target like 'voucher:%' and detail->>'itemId' = cast(:i as text))");
  });
}
