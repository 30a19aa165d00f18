import type { Response, Router } from "express";
import { Op } from "sequelize";
import { z } from "zod";
import { signedIn } from "../../lib/http/auth/session-auth.ts";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import { catalogueItemCreator, catalogueItemUpdater } from "../commands/catalogue-commands.ts";
import { merchantCreator, merchantKeyRotator } from "../commands/merchant-commands.ts";
import { productUserCreator } from "../commands/product-user-creator.ts";
import { authorize } from "../policies.ts";
import { presentItem } from "../presenters/catalogue-presenter.ts";
import { presentMerchant } from "../presenters/merchant-presenter.ts";
import type { ProductContext } from "../product-context.ts";

const merchantForm = z.object({ name: z.string().max(200).default(""), contactEmail: z.string().max(254).default("") });
const staffForm = z.object({ email: z.string().max(254).default("") });
const itemForm = z.object({
  merchantId: z.string().max(12).default(""),
  name: z.string().max(200).default(""),
  description: z.string().max(2000).default(""),
  pointsCost: z.string().max(12).default(""),
  stock: z.string().max(12).default(""),
});
const itemChange = z.object({ pointsCost: z.string().max(12).optional(), stock: z.string().max(12).optional(), active: z.enum(["true", "false"]).optional() });
const id = z.coerce.number().int().positive();

/** A form's number field as typed: the commands say what is wrong with it. */
const count = (v: string | undefined) => (v === undefined || v.trim() === "" ? undefined : Number(v));

/** The programme manager's merchants (POS keys, staff accounts) and the catalogue they offer. */
export function merchantAdminRoutes(router: Router, ctx: ProductContext) {
  const renderMerchants = async (res: Response, extra: Record<string, unknown> = {}, status = 200) => {
    const [merchants, links] = await Promise.all([ctx.models.Merchant.findAll({ order: [["name", "ASC"]] }), ctx.models.MerchantUser.findAll()]);
    const users = await ctx.models.auth.User.findAll({ where: { id: { [Op.in]: links.map((l) => l.userId) } }, attributes: ["id", "username"] });
    const username = new Map(users.map((u) => [u.id, u.username]));
    const staffOf = (merchantId: number) => links.filter((l) => l.merchantId === merchantId).map((l) => username.get(l.userId) ?? `user #${l.userId}`);
    res.status(status).render("product/manage/merchants", { title: "Merchants", merchants: merchants.map((m) => presentMerchant(m, staffOf(m.id))), ...extra });
  };

  router.get("/manage/merchants", async (_req, res) => {
    authorize(signedIn(res)!.actor, "read", "Merchant");
    await renderMerchants(res);
  });

  router.post("/manage/merchants", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "create", "Merchant");
    const form = merchantForm.parse(req.body ?? {});
    try {
      const { merchant, apiKey } = await merchantCreator({ ctx, actor, input: { name: form.name, contactEmail: form.contactEmail.trim() } });
      await renderMerchants(res, { secret: { kind: "api-key", merchantName: merchant.name, value: apiKey } }, 201);
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderMerchants(res, { error: err.message, fields: err.fields, form }, 400);
    }
  });

  router.post("/manage/merchants/:id/key", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "update", "Merchant");
    const { merchant, apiKey } = await merchantKeyRotator({ ctx, actor, input: { merchantId: id.parse(req.params.id) } });
    await renderMerchants(res, { secret: { kind: "api-key", merchantName: merchant.name, value: apiKey, rotated: true } });
  });

  router.post("/manage/merchants/:id/staff", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "update", "Merchant");
    const merchantId = id.parse(req.params.id);
    if (!(await ctx.models.Merchant.findByPk(merchantId))) throw new HttpError(404, `There is no merchant with id ${merchantId}.`);
    const form = staffForm.parse(req.body ?? {});
    try {
      const account = await productUserCreator({ ctx, actor, input: { email: form.email, role: "merchant", merchantId } });
      await renderMerchants(res, { secret: { kind: "password", username: account.username, value: account.oneTimePassword } }, 201);
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderMerchants(res, { error: err.message, fields: err.fields }, 400);
    }
  });

  const renderCatalogue = async (res: Response, extra: Record<string, unknown> = {}, status = 200) => {
    const [items, merchants] = await Promise.all([
      ctx.models.CatalogueItem.findAll({
        order: [
          ["active", "DESC"],
          ["name", "ASC"],
        ],
      }),
      ctx.models.Merchant.findAll({ order: [["name", "ASC"]], attributes: ["id", "name"] }),
    ]);
    const merchantName = new Map(merchants.map((m) => [m.id, m.name]));
    res.status(status).render("product/manage/catalogue", {
      title: "Catalogue",
      items: items.map((i) => presentItem(i, merchantName.get(i.merchantId) ?? `merchant #${i.merchantId}`)),
      merchants: merchants.map((m) => ({ id: m.id, name: m.name })),
      ...extra,
    });
  };

  router.get("/manage/catalogue", async (_req, res) => {
    authorize(signedIn(res)!.actor, "read", "Catalogue");
    await renderCatalogue(res);
  });

  router.post("/manage/catalogue", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "create", "Catalogue");
    const form = itemForm.parse(req.body ?? {});
    try {
      const merchantId = Number(form.merchantId);
      if (!Number.isInteger(merchantId) || merchantId < 1)
        throw new BadRequestError("The item was not saved.", { merchantId: "choose the merchant that offers it" });
      await catalogueItemCreator({
        ctx,
        actor,
        input: {
          merchantId,
          name: form.name,
          description: form.description.trim(),
          pointsCost: count(form.pointsCost) ?? NaN,
          stock: count(form.stock) ?? NaN,
        },
      });
      res.redirect(303, "/manage/catalogue");
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderCatalogue(res, { error: err.message, fields: err.fields, form }, 400);
    }
  });

  router.post("/manage/catalogue/:id", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "update", "Catalogue");
    const form = itemChange.parse(req.body ?? {});
    try {
      const changes = { pointsCost: count(form.pointsCost), stock: count(form.stock), active: form.active === undefined ? undefined : form.active === "true" };
      // Only what the form sent: a field left out stays as it is.
      const sent = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
      await catalogueItemUpdater({ ctx, actor, input: { itemId: id.parse(req.params.id), ...sent } });
      res.redirect(303, "/manage/catalogue");
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderCatalogue(res, { error: err.message, fields: err.fields }, 400);
    }
  });
}
