import type { Response, Router } from "express";
import { QueryTypes } from "sequelize";
import { z } from "zod";
import { signedIn } from "../../lib/http/auth/session-auth.ts";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import { payoutRuleSaver, type PayoutRuleInput } from "../commands/payout-rule-saver.ts";
import { payoutRunApprover } from "../commands/payout-run-approver.ts";
import { payoutRunComputer } from "../commands/payout-run-computer.ts";
import { payoutRunExporter } from "../commands/payout-run-exporter.ts";
import { SALES_COLUMNS, SalesImportRejected, payoutSalesImporter } from "../commands/payout-sales-importer.ts";
import { definePayoutModels } from "../models/payout-models.ts";
import type { Programme } from "../models/programme.ts";
import { currencyExponent, formatBpAsPercent, formatMinor, parseScaled } from "../payouts/minor-units.ts";
import { TIER_LIMITS, type PayoutBreakdown, type PayoutTier } from "../payouts/payout-calculator.ts";
import { latestFrozenPeriod } from "../payouts/payout-lines.ts";
import { authorize } from "../policies.ts";
import { csvUpload } from "./csv-upload.ts";
import { explainPayout, presentRule, presentRun, ruleFormValues } from "../presenters/payout-presenter.ts";
import { presentProgramme } from "../presenters/programme-presenter.ts";
import type { ProductContext } from "../product-context.ts";

const id = z.coerce.number().int().positive();
const count = z.coerce.number().int().min(0).max(10_000_000).optional().catch(undefined);
const noticeQuery = z.object({ notice: z.string().max(40).optional(), created: count, updated: count });
const periodForm = z.object({ period: z.string().max(20).default("") });

function notice(query: unknown): string | undefined {
  const q = noticeQuery.parse(query);
  if (q.notice === "rule-saved") return "The payout rule was saved.";
  if (q.notice === "sales-imported") return `Sales imported: ${q.created ?? 0} new, ${q.updated ?? 0} updated.`;
  if (q.notice === "computed") return "The payouts were computed. Review them, then approve.";
  if (q.notice === "approved") return "The payouts were approved and are now frozen.";
  return undefined;
}

const nextPeriod = (period: string) => {
  const [year, month] = period.split("-").map(Number);
  return month === 12 ? `${year + 1}-01` : `${year}-${String(month + 1).padStart(2, "0")}`;
};

/** The rule form (percentages, a multiplier, an amount in major units) as the rule saver's integers. */
function ruleInput(body: Record<string, unknown>, currency: string): Omit<PayoutRuleInput, "programmeId"> {
  const text = (key: string) => (typeof body[key] === "string" ? (body[key] as string).trim() : "");
  const fields: Record<string, string> = {};
  const tiers: PayoutTier[] = [];
  for (let i = 0; i < TIER_LIMITS.maxTiers; i++) {
    if (!text(`from${i}`) && !text(`rate${i}`)) continue;
    const from = parseScaled(text(`from${i}`), 2);
    const rate = parseScaled(text(`rate${i}`), 2);
    if (from === undefined || rate === undefined)
      fields.tiers ??= `tier ${i + 1}: write the attainment and the rate as percentages with at most two decimals, e.g. 80 and 4.5`;
    else tiers.push({ fromAttainmentBp: Number(from), rateBp: Number(rate) });
  }
  const accelerator = parseScaled(text("accelerator") || "1", 4);
  if (accelerator === undefined) fields.accelerator = "a multiplier with at most four decimals, e.g. 1.5";
  const exponent = currencyExponent(currency);
  const cap = parseScaled(text("cap"), exponent);
  if (cap === undefined)
    fields.cap = `an amount in ${currency} with at most ${exponent} decimals, e.g. ${formatMinor(1500n * 10n ** BigInt(exponent), currency)}`;
  if (Object.keys(fields).length > 0) throw new BadRequestError("The payout rule was not saved.", fields);
  return { effectiveFrom: text("effectiveFrom"), tiers, acceleratorBp: Number(accelerator), capMinor: cap! };
}

/** Programme managers: payout rules, sales figures, payout runs of sales-incentive programmes. */
export function payoutRoutes(router: Router, ctx: ProductContext) {
  const { PayoutRule, PayoutRun } = definePayoutModels(ctx.sequelize);

  const salesProgramme = async (programmeId: number) => {
    const programme = await ctx.models.Programme.findByPk(programmeId);
    if (!programme || programme.kind !== "sales_incentive") throw new HttpError(404, `There is no sales-incentive programme with id ${programmeId}.`);
    return programme;
  };

  router.get("/manage/payouts", async (_req, res) => {
    authorize(signedIn(res)!.actor, "read", "Payout");
    const programmes = await ctx.models.Programme.findAll({
      where: { kind: "sales_incentive" },
      order: [
        ["status", "ASC"],
        ["name", "ASC"],
      ],
    });
    const latest = await ctx.sequelize.query<{ programme_id: number; period: string; status: string }>(
      "select distinct on (programme_id) programme_id, period, status from payout_runs order by programme_id, period desc",
      { type: QueryTypes.SELECT },
    );
    const latestOf = new Map(latest.map((r) => [r.programme_id, r]));
    res.render("product/manage/payouts", { title: "Payouts", programmes: programmes.map((p) => ({ ...presentProgramme(p), latestRun: latestOf.get(p.id) })) });
  });

  /** `typed`: what the manager typed into the rule or compute form, shown again after a refusal. */
  const renderProgramme = async (
    res: Response,
    programme: Programme,
    extra: Record<string, unknown> = {},
    status = 200,
    typed: { rule?: Record<string, unknown>; period?: string } = {},
  ) => {
    const rules = await PayoutRule.findAll({ where: { programmeId: programme.id }, order: [["effectiveFrom", "DESC"]] });
    const frozen = await latestFrozenPeriod(ctx.sequelize, programme.id);
    const suggestedFrom =
      frozen && (!rules[0] || rules[0].effectiveFrom <= frozen) ? nextPeriod(frozen) : (rules[0]?.effectiveFrom ?? new Date().toISOString().slice(0, 7));
    const sales = await ctx.sequelize.query<{ period: string; participants: string; quota: string; sales: string }>(
      `select period, count(*) as participants, sum(quota_minor) as quota, sum(sales_minor) as sales
         from sales_records where programme_id = :programmeId group by period order by period desc`,
      { replacements: { programmeId: programme.id }, type: QueryTypes.SELECT },
    );
    const runs = await PayoutRun.findAll({ where: { programmeId: programme.id }, order: [["period", "DESC"]] });
    res.status(status).render("product/manage/payout-programme", {
      title: `Payouts · ${programme.name}`,
      programme: presentProgramme(programme),
      rules: rules.map((r) => presentRule(r, programme.currency)),
      ruleForm: ruleFormValues(programme.currency, rules[0] ?? null, suggestedFrom, typed.rule),
      frozen,
      salesPeriods: sales.map((s) => ({
        period: s.period,
        participants: Number(s.participants),
        quota: formatMinor(BigInt(s.quota), programme.currency),
        sales: formatMinor(BigInt(s.sales), programme.currency),
      })),
      computePeriod: typed.period ?? sales[0]?.period ?? "",
      runs: runs.map(presentRun),
      columns: SALES_COLUMNS.join(","),
      ...extra,
    });
  };

  /** Run a command; a refusal (400) shows the programme's page again with what was wrong. */
  const orShowRefusal = async (res: Response, programme: Programme, typed: { rule?: Record<string, unknown>; period?: string }, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderProgramme(
        res,
        programme,
        {
          error: err.message,
          fields: Object.keys(err.fields).length > 0 ? err.fields : undefined,
          rowErrors: err instanceof SalesImportRejected ? err.errors : undefined,
        },
        400,
        typed,
      );
    }
  };

  router.get("/manage/payouts/programmes/:id", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Payout");
    await renderProgramme(res, await salesProgramme(id.parse(req.params.id)), { notice: notice(req.query) });
  });

  router.post("/manage/payouts/programmes/:id/rules", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "update", "Payout");
    const programme = await salesProgramme(id.parse(req.params.id));
    await orShowRefusal(res, programme, { rule: req.body ?? {} }, async () => {
      await payoutRuleSaver({ ctx, actor, input: { programmeId: programme.id, ...ruleInput(req.body ?? {}, programme.currency) } });
      res.redirect(303, `/manage/payouts/programmes/${programme.id}?notice=rule-saved`);
    });
  });

  router.post("/manage/payouts/programmes/:id/sales", csvUpload({ action: "import", subject: "Payout" }), async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "import", "Payout");
    const programme = await salesProgramme(id.parse(req.params.id));
    await orShowRefusal(res, programme, {}, async () => {
      if (!req.file) throw new BadRequestError("Choose the sales CSV file to import.");
      const { created, updated } = await payoutSalesImporter({ ctx, actor, input: { programmeId: programme.id, csv: { path: req.file.path } } });
      res.redirect(303, `/manage/payouts/programmes/${programme.id}?notice=sales-imported&created=${created}&updated=${updated}`);
    });
  });

  router.post("/manage/payouts/programmes/:id/runs", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "create", "Payout");
    const programme = await salesProgramme(id.parse(req.params.id));
    const form = periodForm.parse(req.body ?? {});
    await orShowRefusal(res, programme, { period: form.period }, async () => {
      const run = await payoutRunComputer({ ctx, actor, input: { programmeId: programme.id, period: form.period.trim() } });
      res.redirect(303, `/manage/payouts/runs/${run.id}?notice=computed`);
    });
  });

  router.get("/manage/payouts/runs/:id", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Payout");
    const run = await PayoutRun.findByPk(id.parse(req.params.id));
    if (!run) throw new HttpError(404, `There is no payout run with id ${req.params.id}.`);
    const programme = await salesProgramme(run.programmeId);
    const rule = await PayoutRule.findByPk(run.ruleId);
    const payouts = await ctx.sequelize.query<{ employee_id: string; name: string; attainment_bp: string; amount_minor: string; detail: PayoutBreakdown }>(
      `select p.employee_id, p.name, o.attainment_bp, o.amount_minor, o.detail
         from payouts o join participants p on p.id = o.participant_id where o.run_id = :runId order by p.employee_id`,
      { replacements: { runId: run.id }, type: QueryTypes.SELECT },
    );
    const total = payouts.reduce((sum, p) => sum + BigInt(p.amount_minor), 0n);
    res.render("product/manage/payout-run", {
      title: `Payouts · ${programme.name} · ${run.period}`,
      programme: presentProgramme(programme),
      run: presentRun(run),
      rule: rule && presentRule(rule, programme.currency),
      payouts: payouts.map((p) => ({
        employeeId: p.employee_id,
        name: p.name,
        attainment: formatBpAsPercent(BigInt(p.attainment_bp)),
        amount: formatMinor(BigInt(p.amount_minor), programme.currency),
        explanation: explainPayout(p.detail, programme.currency),
      })),
      total: formatMinor(total, programme.currency),
      notice: notice(req.query),
    });
  });

  router.post("/manage/payouts/runs/:id/recompute", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "create", "Payout");
    const run = await PayoutRun.findByPk(id.parse(req.params.id));
    if (!run) throw new HttpError(404, `There is no payout run with id ${req.params.id}.`);
    await payoutRunComputer({ ctx, actor, input: { programmeId: run.programmeId, period: run.period } });
    res.redirect(303, `/manage/payouts/runs/${run.id}?notice=computed`);
  });

  router.post("/manage/payouts/runs/:id/approve", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "approve", "Payout");
    const run = await payoutRunApprover({ ctx, actor, input: { runId: id.parse(req.params.id) } });
    res.redirect(303, `/manage/payouts/runs/${run.id}?notice=approved`);
  });

  router.post("/manage/payouts/runs/:id/export", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "export", "Payout");
    const { filename, csv } = await payoutRunExporter({ ctx, actor, input: { runId: id.parse(req.params.id) } });
    res.attachment(filename).type("text/csv; charset=utf-8").send(csv);
  });
}
