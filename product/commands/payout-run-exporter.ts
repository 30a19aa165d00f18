import { HttpError } from "../../lib/http/http-errors.ts";
import { formatBpAsPercent, formatMinor } from "../payouts/minor-units.ts";
import { storedPayoutLines } from "../payouts/payout-lines.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";
import { lockRun } from "./payout-run-computer.ts";

export const PAYOUT_CSV_COLUMNS = ["employee_id", "name", "period", "attainment_percent", "amount", "currency"] as const;

/** A CSV cell: quoted when needed, and a leading = + - @ neutralised so a spreadsheet never runs it as a formula. */
function cell(text: string): string {
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/**
 * The payroll file of an approved run: one line per participant with the attainment in percent and the amount in
 * the programme's currency's major units, written from the stored integers (no floating point anywhere). The
 * first download marks the run exported; later downloads give the same file.
 */
export async function payoutRunExporter(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { runId: number };
}): Promise<{ filename: string; csv: string }> {
  const { ctx, actor, input } = props;
  authorize(actor, "export", "Payout");
  return ctx.sequelize.transaction(async (transaction) => {
    const { run, programme } = await lockRun(ctx, input.runId, transaction);
    if (run.status === "computed")
      throw new HttpError(409, `The payouts of "${programme.name}" for ${run.period} are not approved yet: approve them before exporting.`);
    const lines = await storedPayoutLines(ctx.sequelize, run.id, transaction);
    const names = new Map(
      (await ctx.models.Participant.findAll({ where: { id: lines.map((l) => l.participantId) }, attributes: ["id", "name"], transaction })).map((p) => [
        p.id,
        p.name,
      ]),
    );
    const csv =
      [
        PAYOUT_CSV_COLUMNS.join(","),
        ...lines.map((l) =>
          [
            cell(l.employeeId),
            cell(names.get(l.participantId) ?? ""),
            run.period,
            formatBpAsPercent(l.attainmentBp),
            formatMinor(l.amountMinor, programme.currency),
            programme.currency,
          ].join(","),
        ),
      ].join("\r\n") + "\r\n";
    const first = run.status === "approved";
    if (first) await run.update({ status: "exported", exportedAt: new Date() }, { transaction });
    await ctx.models.events.append(
      {
        actor: actorLabel(actor),
        action: "payout.run.export",
        target: `payout_run:${run.id}`,
        detail: { programmeId: programme.id, period: run.period, payouts: lines.length, first },
      },
      transaction,
    );
    const slug =
      programme.name
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-|-$/g, "") || `programme-${programme.id}`;
    return { filename: `payouts-${slug}-${run.period}.csv`, csv };
  });
}
