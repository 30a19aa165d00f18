import { randomBytes } from "node:crypto";
import type { Sequelize } from "sequelize";
import { catalogueItemCreator } from "../commands/catalogue-commands.ts";
import { merchantCreator } from "../commands/merchant-commands.ts";
import { pointsAwarder } from "../commands/points-awarder.ts";
import { productUserCreator } from "../commands/product-user-creator.ts";
import { SYSTEM_ACTOR, type ProductContext } from "../product-context.ts";
import { standaloneContext } from "../standalone-context.ts";

export interface TemporaryShop {
  ctx: ProductContext;
  /** The one random tag every row of this shop carries (employee id, e-mail, merchant name). */
  tag: string;
  participantId: number;
  participantLogin: { username: string; password: string };
  merchantId: number;
  merchantApiKey: string;
  itemId: number;
  itemName: string;
  itemCost: number;
  startingPoints: number;
}

function names(tag: string) {
  return { employeeId: `validation-${tag}`, username: `${tag}@validation.invalid`, merchant: `Validation merchant ${tag}` };
}

/**
 * A participant with points and an account, a merchant with an item: what a suite needs to shop through
 * HTTP. Everything carries one random tag and is removed again by `removeTemporaryShop` (also when making
 * the shop fails half-way).
 */
export async function createTemporaryShop(sequelize: Sequelize, suite: string): Promise<TemporaryShop> {
  const ctx = standaloneContext(sequelize);
  const tag = `${suite}-${randomBytes(5).toString("hex")}`;
  const n = names(tag);
  const password = randomBytes(18).toString("base64url");
  try {
    const participant = await ctx.models.Participant.create({
      employeeId: n.employeeId,
      name: `Validation ${tag}`,
      email: n.username,
      department: "validation",
      country: "NL",
    });
    await productUserCreator({ ctx, actor: SYSTEM_ACTOR, input: { email: n.username, role: "participant", participantId: participant.id, password } });
    const { merchant, apiKey } = await merchantCreator({ ctx, actor: SYSTEM_ACTOR, input: { name: n.merchant } });
    const item = await catalogueItemCreator({
      ctx,
      actor: SYSTEM_ACTOR,
      input: { merchantId: merchant.id, name: `Validation item ${tag}`, pointsCost: 10, stock: 5 },
    });
    await pointsAwarder({
      ctx,
      actor: SYSTEM_ACTOR,
      input: { participantId: participant.id, programmeId: null, kind: "award", points: 50, idempotencyKey: `validation:${tag}` },
    });
    return {
      ctx,
      tag,
      participantId: participant.id,
      participantLogin: { username: n.username, password },
      merchantId: merchant.id,
      merchantApiKey: apiKey,
      itemId: item.id,
      itemName: item.name,
      itemCost: 10,
      startingPoints: 50,
    };
  } catch (err) {
    await removeTemporaryShop({ ctx, tag });
    throw err;
  }
}

/** Remove every row a temporary shop made, found by its tag (ledger rows through the sanctioned cleanup switch). */
export async function removeTemporaryShop(shop: Pick<TemporaryShop, "ctx" | "tag">): Promise<void> {
  const { sequelize } = shop.ctx;
  const n = names(shop.tag);
  await sequelize.transaction(async (transaction) => {
    const q = (sql: string) => sequelize.query(sql, { replacements: { e: n.employeeId, u: n.username, m: n.merchant }, transaction });
    await q("set local plum.ledger_cleanup = 'on'");
    await q(
      "create temporary table shop_ids on commit drop as select (select id from participants where employee_id = :e) as p, (select id from merchants where name = :m) as m, (select id from product_users where username = :u) as u",
    );
    await q("delete from ledger_entries where participant_id = (select p from shop_ids)");
    await q("delete from vouchers where participant_id = (select p from shop_ids) or merchant_id = (select m from shop_ids)");
    await q(
      "delete from product_events where actor in ('user:' || :u, :u, 'pos:merchant:' || (select m from shop_ids)) or target in ('user:' || :u, 'merchant:' || (select m from shop_ids)) or target in (select 'item:' || id from catalogue_items where merchant_id = (select m from shop_ids)) or (target like 'voucher:%' and detail->>'itemId' in (select cast(id as text) from catalogue_items where merchant_id = (select m from shop_ids)))",
    );
    await q("delete from catalogue_items where merchant_id = (select m from shop_ids)");
    await q("delete from product_sessions where user_id = (select u from shop_ids)");
    await q("delete from product_login_attempts where username = :u");
    await q("delete from merchant_users where merchant_id = (select m from shop_ids)");
    await q("delete from participants where id = (select p from shop_ids)");
    await q("delete from product_users where id = (select u from shop_ids)");
    await q("delete from merchants where id = (select m from shop_ids)");
  });
}
