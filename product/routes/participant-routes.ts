import { randomUUID } from "node:crypto";
import type { Request, Response, Router } from "express";
import { Op, QueryTypes } from "sequelize";
import { z } from "zod";
import { signedIn } from "../../lib/http/auth/session-auth.ts";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import { balanceOf } from "../commands/ledger.ts";
import { ImportRejected, PARTICIPANT_COLUMNS, participantsImporter } from "../commands/participants-importer.ts";
import { pointsAwarder } from "../commands/points-awarder.ts";
import { productUserCreator } from "../commands/product-user-creator.ts";
import { authorize } from "../policies.ts";
import { csvUpload } from "./csv-upload.ts";
import { presentLedgerEntry, presentParticipant } from "../presenters/participant-presenter.ts";
import { presentProgramme } from "../presenters/programme-presenter.ts";
import type { ProductContext } from "../product-context.ts";

const PAGE = 50;
const listQuery = z.object({ q: z.string().max(100).optional(), page: z.coerce.number().int().min(1).max(100_000).default(1) });
const id = z.coerce.number().int().positive();
const pointsForm = z.object({
  kind: z.enum(["award", "adjustment"]),
  points: z.coerce.number().int(),
  programmeId: z.union([z.literal(""), z.coerce.number().int().positive()]).optional(),
  note: z.string().max(500).default(""),
  idempotencyKey: z.string().max(200),
});

/** Programme managers: participants, their HRIS import, their points, their storefront accounts. */
export function participantRoutes(router: Router, ctx: ProductContext) {
  const renderList = async (req: Request, res: Response, extra: Record<string, unknown> = {}, status = 200) => {
    const q = listQuery.parse(req.query);
    const where = q.q
      ? { [Op.or]: [{ name: { [Op.iLike]: `%${q.q}%` } }, { employeeId: { [Op.iLike]: `${q.q}%` } }, { email: { [Op.iLike]: `${q.q}%` } }] }
      : {};
    const { rows, count } = await ctx.models.Participant.findAndCountAll({ where, order: [["employeeId", "ASC"]], limit: PAGE, offset: (q.page - 1) * PAGE });
    const balances = rows.length
      ? await ctx.sequelize.query<{ participant_id: number; balance: string }>(
          "select participant_id, sum(points) as balance from ledger_entries where participant_id in (:ids) group by participant_id",
          { replacements: { ids: rows.map((r) => r.id) }, type: QueryTypes.SELECT },
        )
      : [];
    const byId = new Map(balances.map((b) => [b.participant_id, Number(b.balance)]));
    const pages = Math.max(1, Math.ceil(count / PAGE));
    res.status(status).render("product/manage/participants", {
      title: "Participants",
      participants: rows.map((p) => presentParticipant(p, byId.get(p.id) ?? 0)),
      count,
      q: q.q ?? "",
      page: q.page,
      prevPage: q.page > 1 ? q.page - 1 : undefined,
      nextPage: q.page < pages ? q.page + 1 : undefined,
      columns: PARTICIPANT_COLUMNS.join(","),
      ...extra,
    });
  };

  router.get("/manage/participants", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Participant");
    await renderList(req, res, { notice: typeof req.query.imported === "string" ? req.query.imported : undefined });
  });

  router.post("/manage/participants/import", csvUpload({ action: "import", subject: "Participant" }), async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "import", "Participant");
    if (!req.file) return renderList(req, res, { error: "Choose the CSV file to import." }, 400);
    try {
      const { created, updated } = await participantsImporter({ ctx, actor, input: { csv: { path: req.file.path } } });
      res.redirect(
        303,
        `/manage/participants?imported=${encodeURIComponent(`Imported ${created + updated} participants: ${created} new, ${updated} updated.`)}`,
      );
    } catch (err) {
      if (!(err instanceof ImportRejected)) throw err;
      await renderList(req, res, { error: err.message, rowErrors: err.errors }, 400);
    }
  });

  const renderDetail = async (res: Response, participantId: number, extra: Record<string, unknown> = {}, status = 200) => {
    const participant = await ctx.models.Participant.findByPk(participantId);
    if (!participant) throw new HttpError(404, `There is no participant with id ${participantId}.`);
    const entries = await ctx.models.LedgerEntry.findAll({ where: { participantId }, order: [["id", "DESC"]], limit: 100 });
    const programmes = await ctx.models.Programme.findAll({ where: { status: "active" }, order: [["name", "ASC"]] });
    res.status(status).render("product/manage/participant", {
      title: participant.name,
      participant: presentParticipant(participant, await balanceOf(ctx, participantId)),
      entries: entries.map(presentLedgerEntry),
      programmes: programmes.map(presentProgramme),
      idempotencyKey: randomUUID(),
      ...extra,
    });
  };

  router.get("/manage/participants/:id", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Participant");
    await renderDetail(res, id.parse(req.params.id));
  });

  router.post("/manage/participants/:id/points", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "create", "Ledger");
    const participantId = id.parse(req.params.id);
    try {
      const form = pointsForm.parse(req.body ?? {});
      await pointsAwarder({
        ctx,
        actor,
        input: {
          participantId,
          programmeId: form.programmeId ? Number(form.programmeId) : null,
          kind: form.kind,
          points: form.points,
          note: form.note,
          idempotencyKey: `form:${form.idempotencyKey}`,
        },
      });
      res.redirect(303, `/manage/participants/${participantId}`);
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderDetail(res, participantId, { error: err.message, fields: err.fields }, 400);
    }
  });

  router.post("/manage/participants/:id/account", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "create", "Participant");
    const participant = await ctx.models.Participant.findByPk(id.parse(req.params.id));
    if (!participant) throw new HttpError(404, "There is no such participant.");
    try {
      const account = await productUserCreator({ ctx, actor, input: { email: participant.email, role: "participant", participantId: participant.id } });
      res.status(201).render("product/manage/one-time-password", {
        title: "Account created",
        username: account.username,
        oneTimePassword: account.oneTimePassword,
        back: `/manage/participants/${participant.id}`,
      });
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderDetail(res, participant.id, { error: err.message, fields: err.fields }, 400);
    }
  });
}
