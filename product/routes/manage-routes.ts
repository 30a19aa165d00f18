import type { Router } from "express";
import { QueryTypes } from "sequelize";
import { z } from "zod";
import { signedIn } from "../../lib/http/auth/session-auth.ts";
import { BadRequestError } from "../../lib/http/http-errors.ts";
import { programmeCreator, programmeUpdater } from "../commands/programme-commands.ts";
import { PROGRAMME_KINDS } from "../models/programme.ts";
import { authorize } from "../policies.ts";
import { presentProgramme } from "../presenters/programme-presenter.ts";
import type { ProductContext } from "../product-context.ts";

const programmeForm = z.object({
  name: z.string().max(200).default(""),
  kind: z.string().max(40).default(""),
  description: z.string().max(2000).default(""),
  currency: z.string().max(3).default("EUR"),
  status: z.enum(["active", "archived"]).optional(),
});
const programmeChanges = z.object({
  name: z.string().max(200).optional(),
  kind: z.string().max(40).optional(),
  description: z.string().max(2000).optional(),
  currency: z.string().max(3).optional(),
  status: z.enum(["active", "archived"]).optional(),
});
const id = z.coerce.number().int().positive();

const NOTICES: Record<string, string> = { "password-changed": "Your password was changed." };

/** The programme manager's overview and programmes. */
export function manageRoutes(router: Router, ctx: ProductContext) {
  router.get("/manage", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Programme");
    const [stats] = await ctx.sequelize.query<Record<string, string>>(
      `select (select count(*) from programmes where status = 'active') as programmes,
              (select count(*) from participants) as participants,
              (select count(*) from merchants where disabled_at is null) as merchants,
              (select count(*) from catalogue_items where active) as items,
              (select count(*) from vouchers where status = 'issued') as vouchers_open,
              (select count(*) from vouchers where status = 'redeemed') as vouchers_redeemed,
              (select coalesce(sum(points), 0) from ledger_entries) as points_outstanding`,
      { type: QueryTypes.SELECT },
    );
    res.render("product/manage/overview", { title: "Overview", stats, notice: NOTICES[String(req.query.notice ?? "")] });
  });

  const renderProgrammes = async (res: import("express").Response, extra: Record<string, unknown> = {}, status = 200) => {
    const programmes = await ctx.models.Programme.findAll({
      order: [
        ["status", "ASC"],
        ["name", "ASC"],
      ],
    });
    res
      .status(status)
      .render("product/manage/programmes", { title: "Programmes", programmes: programmes.map(presentProgramme), kinds: PROGRAMME_KINDS, ...extra });
  };

  router.get("/manage/programmes", async (_req, res) => {
    authorize(signedIn(res)!.actor, "read", "Programme");
    await renderProgrammes(res);
  });

  router.post("/manage/programmes", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "create", "Programme");
    try {
      const form = programmeForm.parse(req.body ?? {});
      await programmeCreator({ ctx, actor, input: { ...form, currency: form.currency.toUpperCase() } });
      res.redirect(303, "/manage/programmes");
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderProgrammes(res, { error: err.message, fields: err.fields, form: req.body }, 400);
    }
  });

  router.post("/manage/programmes/:id", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "update", "Programme");
    try {
      const form = programmeChanges.parse(req.body ?? {});
      await programmeUpdater({ ctx, actor, input: { programmeId: id.parse(req.params.id), ...form, currency: form.currency?.toUpperCase() } });
      res.redirect(303, "/manage/programmes");
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderProgrammes(res, { error: err.message, fields: err.fields }, 400);
    }
  });
}
