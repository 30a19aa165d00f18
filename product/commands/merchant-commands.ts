import { createHash, randomBytes } from "node:crypto";
import { UniqueConstraintError } from "sequelize";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import type { Merchant } from "../models/merchant.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** A merchant API key: `pk_` + 8 visible characters (the prefix shown in lists) + 32 secret ones. */
function newApiKey(): { key: string; prefix: string } {
  const key = `pk_${randomBytes(30).toString("base64url")}`;
  return { key, prefix: key.slice(0, 11) };
}

/** A manager adds a merchant; its POS API key is returned to be shown once (only its hash is kept). */
export async function merchantCreator(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { name: string; contactEmail?: string };
}): Promise<{ merchant: Merchant; apiKey: string }> {
  const { ctx, actor } = props;
  authorize(actor, "create", "Merchant");
  const name = props.input.name.trim();
  if (name.length < 2 || name.length > 120) throw new BadRequestError("The merchant was not saved.", { name: "2 to 120 characters" });
  const { key, prefix } = newApiKey();
  try {
    return await ctx.sequelize.transaction(async (transaction) => {
      const merchant = await ctx.models.Merchant.create(
        { name, contactEmail: props.input.contactEmail ?? "", apiKeyHash: hashApiKey(key), apiKeyPrefix: prefix },
        { transaction },
      );
      await ctx.models.events.append({ actor: actorLabel(actor), action: "merchant.create", target: `merchant:${merchant.id}` }, transaction);
      return { merchant, apiKey: key };
    });
  } catch (err) {
    if (err instanceof UniqueConstraintError) throw new BadRequestError("The merchant was not saved.", { name: "another merchant has this name" });
    throw err;
  }
}

/** Replace a merchant's API key (the old one stops working at once); the new key is shown once. */
export async function merchantKeyRotator(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { merchantId: number };
}): Promise<{ merchant: Merchant; apiKey: string }> {
  const { ctx, actor } = props;
  authorize(actor, "update", "Merchant");
  const merchant = await ctx.models.Merchant.findByPk(props.input.merchantId);
  if (!merchant) throw new HttpError(404, `There is no merchant with id ${props.input.merchantId}.`);
  const { key, prefix } = newApiKey();
  await ctx.sequelize.transaction(async (transaction) => {
    await merchant.update({ apiKeyHash: hashApiKey(key), apiKeyPrefix: prefix }, { transaction });
    await ctx.models.events.append({ actor: actorLabel(actor), action: "merchant.rotate-key", target: `merchant:${merchant.id}` }, transaction);
  });
  return { merchant, apiKey: key };
}

/** The merchant an API key belongs to (enabled merchants only), or undefined. */
export async function merchantByApiKey(ctx: ProductContext, key: string): Promise<Merchant | undefined> {
  if (!/^pk_[A-Za-z0-9_-]{40}$/.test(key)) return undefined;
  const merchant = await ctx.models.Merchant.findOne({ where: { apiKeyHash: hashApiKey(key) } });
  return merchant && !merchant.disabledAt ? merchant : undefined;
}
