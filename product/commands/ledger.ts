import { QueryTypes, type Transaction } from "sequelize";
import type { ProductContext } from "../product-context.ts";

/** A participant's balance: the sum of their ledger entries. */
export async function balanceOf(ctx: ProductContext, participantId: number, transaction?: Transaction): Promise<number> {
  const [row] = await ctx.sequelize.query<{ balance: string }>(
    "select coalesce(sum(points), 0) as balance from ledger_entries where participant_id = :participantId",
    {
      replacements: { participantId },
      type: QueryTypes.SELECT,
      transaction,
    },
  );
  return Number(row.balance);
}

/**
 * Lock a participant's row for the rest of the transaction: every command that spends points takes this
 * lock first, so concurrent spends are serialised and a balance can never be overdrawn.
 */
export async function lockParticipant(ctx: ProductContext, participantId: number, transaction: Transaction): Promise<boolean> {
  const rows = await ctx.sequelize.query("select id from participants where id = :participantId for update", {
    replacements: { participantId },
    type: QueryTypes.SELECT,
    transaction,
  });
  return rows.length === 1;
}
