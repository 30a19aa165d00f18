import { Op } from "sequelize";
import { BadRequestError } from "../http-errors.ts";
import type { AuthContext } from "./auth-context.ts";
import type { AuthUser } from "./auth-models.ts";
import { checkNewPassword, hashPassword, verifyPassword } from "./passwords.ts";

/** A user changes their own password; their other sessions are closed. */
export async function passwordChanger(props: {
  ctx: AuthContext;
  user: AuthUser;
  sessionId: string;
  input: { currentPassword: string; newPassword: string; confirmPassword: string };
}): Promise<void> {
  const { ctx, user, input } = props;
  if (!(await verifyPassword(user.passwordHash, input.currentPassword))) {
    await ctx.audit.append({ actor: `user:${user.username}`, action: "password.change", outcome: "failure", detail: { reason: "wrong current password" } });
    throw new BadRequestError("The new password was not accepted.", { currentPassword: "is not your current password" });
  }
  checkNewPassword(user.username, input.newPassword, input.confirmPassword);
  if (input.newPassword === input.currentPassword)
    throw new BadRequestError("The new password was not accepted.", { newPassword: "must differ from the current one" });
  await ctx.sequelize.transaction(async (transaction) => {
    await user.update({ passwordHash: await hashPassword(input.newPassword), mustChangePassword: false }, { transaction });
    await ctx.models.Session.destroy({ where: { userId: user.id, id: { [Op.ne]: props.sessionId } }, transaction });
    await ctx.audit.append({ actor: `user:${user.username}`, action: "password.change", target: `user:${user.username}` }, transaction);
  });
}
