import { Op } from "sequelize";
import { BadRequestError } from "../../shared/http-errors.ts";
import type { ConsoleContext } from "../context.ts";
import type { OpsUser } from "../models/ops-models.ts";
import { checkNewPassword, hashPassword, verifyPassword } from "../passwords.ts";

/** A user changes their own password; their other sessions are closed. */
export async function passwordChanger(props: {
  ctx: ConsoleContext;
  user: OpsUser;
  sessionId: string;
  input: { currentPassword: string; newPassword: string; confirmPassword: string };
}): Promise<void> {
  const { ctx, user, input } = props;
  if (!(await verifyPassword(user.passwordHash, input.currentPassword))) {
    await ctx.audit.append({ actor: `user:${user.username}`, action: "password.change", outcome: "failure", detail: { reason: "wrong current password" } });
    throw new BadRequestError("The new password was not accepted.", { currentPassword: "is not your current password" });
  }
  checkNewPassword(user.username, input.newPassword, input.confirmPassword);
  if (input.newPassword === input.currentPassword) throw new BadRequestError("The new password was not accepted.", { newPassword: "must differ from the current one" });
  await ctx.sequelize.transaction(async (transaction) => {
    await user.update({ passwordHash: await hashPassword(input.newPassword), mustChangePassword: false }, { transaction });
    await ctx.models.OpsSession.destroy({ where: { userId: user.id, id: { [Op.ne]: props.sessionId } }, transaction });
    await ctx.audit.append({ actor: `user:${user.username}`, action: "password.change", target: `user:${user.username}` }, transaction);
  });
}
