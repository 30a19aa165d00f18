import { UniqueConstraintError } from "sequelize";
import { hashPassword, oneTimePassword } from "../../lib/http/auth/passwords.ts";
import { BadRequestError, HttpError } from "../../lib/http/http-errors.ts";
import type { ProductRole } from "../models/index.ts";
import { authorize } from "../policies.ts";
import { actorLabel, type ProductActor, type ProductContext } from "../product-context.ts";

/**
 * A manager gives someone a product account: a participant (linked to their participant record), merchant
 * staff (linked to a merchant) or another manager. Returns a one-time password to hand over once.
 */
export async function productUserCreator(props: {
  ctx: ProductContext;
  actor: ProductActor;
  input: { email: string; role: ProductRole; participantId?: number; merchantId?: number; password?: string };
}): Promise<{ userId: number; username: string; oneTimePassword: string }> {
  const { ctx, actor, input } = props;
  authorize(actor, "create", "Participant");
  const username = input.email.trim().toLowerCase();
  if (!/^[^\s@]{1,64}@[^\s@]{1,190}$/.test(username)) throw new BadRequestError("The account was not created.", { email: "is not an e-mail address" });
  if (input.role === "participant" && !input.participantId)
    throw new BadRequestError("The account was not created.", { participantId: "a participant account needs its participant" });
  if (input.role === "merchant" && !input.merchantId)
    throw new BadRequestError("The account was not created.", { merchantId: "a merchant account needs its merchant" });
  const password = input.password ?? oneTimePassword();
  try {
    return await ctx.sequelize.transaction(async (transaction) => {
      const user = await ctx.models.auth.User.create(
        { username, role: input.role, passwordHash: await hashPassword(password), mustChangePassword: input.password === undefined },
        { transaction },
      );
      if (input.role === "participant") {
        const [linked] = await ctx.models.Participant.update({ userId: user.id }, { where: { id: input.participantId!, userId: null }, transaction });
        if (linked !== 1) throw new HttpError(409, `Participant ${input.participantId} does not exist or already has an account.`);
      }
      if (input.role === "merchant") await ctx.models.MerchantUser.create({ userId: user.id, merchantId: input.merchantId! }, { transaction });
      await ctx.models.events.append(
        { actor: actorLabel(actor), action: "account.create", target: `user:${username}`, detail: { role: input.role } },
        transaction,
      );
      return { userId: user.id, username, oneTimePassword: password };
    });
  } catch (err) {
    if (err instanceof UniqueConstraintError) throw new BadRequestError("The account was not created.", { email: "already has an account" });
    throw err;
  }
}
