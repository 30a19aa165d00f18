import { HttpError, BadRequestError } from "../../lib/http/http-errors.ts";
import type { LedgerEntry } from "../models/ledger-entry.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";
import { balanceOf, lockParticipant } from "./ledger.ts";

export interface AwardInput {
  participantId: number;
  programmeId: number | null;
  kind: "award" | "adjustment";
  points: number;
  /** The same key twice is the same award: replays return the first entry instead of paying twice. */
  idempotencyKey: string;
  note?: string;
}

/** Award points (or adjust a balance, up or down) as one append-only ledger entry. */
export async function pointsAwarder(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: AwardInput;
}): Promise<{ entry: LedgerEntry; replayed: boolean; balance: number }> {
  const { ctx, actor, input } = props;
  authorize(actor, "create", "Ledger");
  if (!Number.isInteger(input.points) || input.points === 0 || Math.abs(input.points) > 10_000_000)
    throw new BadRequestError("The points were not recorded.", { points: "must be a whole number other than 0, at most 10,000,000" });
  if (input.kind === "award" && input.points < 0)
    throw new BadRequestError("The points were not recorded.", { points: "an award is positive; use an adjustment to take points away" });
  if (!/^[\w:.-]{8,200}$/.test(input.idempotencyKey))
    throw new BadRequestError("The points were not recorded.", { idempotencyKey: "8 to 200 letters, digits or : . - _" });
  return ctx.sequelize.transaction(async (transaction) => {
    if (!(await lockParticipant(ctx, input.participantId, transaction))) throw new HttpError(404, `There is no participant with id ${input.participantId}.`);
    const existing = await ctx.models.LedgerEntry.findOne({ where: { idempotencyKey: input.idempotencyKey }, transaction });
    if (existing) {
      const same = existing.participantId === input.participantId && existing.points === input.points && existing.kind === input.kind;
      if (!same) throw new HttpError(409, `The idempotency key "${input.idempotencyKey}" was already used for a different entry (#${existing.id}).`);
      return { entry: existing, replayed: true, balance: await balanceOf(ctx, input.participantId, transaction) };
    }
    const before = await balanceOf(ctx, input.participantId, transaction);
    if (before + input.points < 0)
      throw new BadRequestError("The points were not recorded.", {
        points: `the balance is ${before}; an adjustment of ${input.points} would make it negative`,
      });
    const entry = await ctx.models.LedgerEntry.create(
      {
        participantId: input.participantId,
        programmeId: input.programmeId,
        kind: input.kind,
        points: input.points,
        idempotencyKey: input.idempotencyKey,
        note: input.note ?? "",
        createdBy: actorLabel(actor),
      },
      { transaction },
    );
    return { entry, replayed: false, balance: before + input.points };
  });
}
