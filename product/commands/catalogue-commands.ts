import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import type { CatalogueItem } from "../models/catalogue-item.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";

export interface ItemInput {
  merchantId: number;
  name: string;
  description?: string;
  pointsCost: number;
  stock: number;
  active?: boolean;
}

function check(input: Partial<ItemInput>): void {
  const fields: Record<string, string> = {};
  if (input.name !== undefined && (input.name.trim().length < 2 || input.name.length > 120)) fields.name = "2 to 120 characters";
  if (input.pointsCost !== undefined && (!Number.isInteger(input.pointsCost) || input.pointsCost < 1))
    fields.pointsCost = "a whole number of points, at least 1";
  if (input.stock !== undefined && (!Number.isInteger(input.stock) || input.stock < 0)) fields.stock = "a whole number, 0 or more";
  if (Object.keys(fields).length > 0) throw new BadRequestError("The item was not saved.", fields);
}

/** A manager adds an item to the catalogue of a merchant. */
export async function catalogueItemCreator(props: { ctx: ProductContext; actor: ProductActor; input: ItemInput }): Promise<CatalogueItem> {
  const { ctx, actor, input } = props;
  authorize(actor, "create", "Catalogue");
  check(input);
  const merchant = await ctx.models.Merchant.findByPk(input.merchantId);
  if (!merchant) throw new BadRequestError("The item was not saved.", { merchantId: "is not a merchant" });
  return ctx.sequelize.transaction(async (transaction) => {
    const item = await ctx.models.CatalogueItem.create({ ...input, name: input.name.trim(), description: input.description ?? "" }, { transaction });
    await ctx.models.events.append({ actor: actorLabel(actor), action: "catalogue.create", target: `item:${item.id}` }, transaction);
    return item;
  });
}

/** A manager changes an item: price, stock, wording, or takes it out of the catalogue. */
export async function catalogueItemUpdater(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { itemId: number } & Partial<Omit<ItemInput, "merchantId">>;
}): Promise<CatalogueItem> {
  const { ctx, actor, input } = props;
  authorize(actor, "update", "Catalogue");
  check(input);
  return ctx.sequelize.transaction(async (transaction) => {
    const item = await ctx.models.CatalogueItem.findByPk(input.itemId, { transaction, lock: transaction.LOCK.UPDATE });
    if (!item) throw new HttpError(404, `There is no catalogue item with id ${input.itemId}.`);
    const { itemId: _ignored, ...changes } = input;
    await item.update(changes, { transaction });
    await ctx.models.events.append({ actor: actorLabel(actor), action: "catalogue.update", target: `item:${item.id}`, detail: changes }, transaction);
    return item;
  });
}
