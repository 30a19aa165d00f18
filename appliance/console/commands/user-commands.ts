import { UniqueConstraintError, ValidationError } from "sequelize";
import { BadRequestError, ForbiddenError, HttpError } from "../../../lib/http/http-errors.ts";
import type { ConsoleContext } from "../console-context.ts";
import { ROLES, type OpsUser, type Role } from "../models/ops-models.ts";
import type { Actor } from "../../../lib/http/auth/session-auth.ts";
import { hashPassword, oneTimePassword } from "../../../lib/http/auth/passwords.ts";
import { authorize } from "../policies.ts";

function parseRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) throw new BadRequestError("The user was not saved.", { role: `must be one of ${ROLES.join(", ")}` });
  return role as Role;
}

async function loadUser(ctx: ConsoleContext, id: number): Promise<OpsUser> {
  const user = await ctx.models.User.findByPk(id);
  if (!user) throw new HttpError(404, `There is no user with id ${id}.`);
  return user;
}

/** An admin creates a user; the one-time password is returned to be shown once. */
export async function userCreator(props: { ctx: ConsoleContext; actor: Actor; input: { username: string; role: string } }) {
  const { ctx, actor } = props;
  authorize(actor, "create", "User");
  const username = props.input.username.trim().toLowerCase();
  const role = parseRole(props.input.role);
  if (!/^[a-z0-9][a-z0-9._-]{1,62}$/.test(username))
    throw new BadRequestError("The user was not saved.", {
      username: "2 to 63 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
    });
  const password = oneTimePassword();
  try {
    const user = await ctx.sequelize.transaction(async (transaction) => {
      const created = await ctx.models.User.create({ username, role, passwordHash: await hashPassword(password), mustChangePassword: true }, { transaction });
      await ctx.audit.append({ actor: `user:${actor.username}`, action: "user.create", target: `user:${username}`, detail: { role } }, transaction);
      return created;
    });
    return { user, oneTimePassword: password };
  } catch (err) {
    if (err instanceof UniqueConstraintError) throw new BadRequestError("The user was not saved.", { username: "is taken" });
    if (err instanceof ValidationError) throw new BadRequestError("The user was not saved.", { username: err.errors[0]?.message ?? "is invalid" });
    throw err;
  }
}

/**
 * An admin changes a user's role or disables/enables the account. The last active admin stays an admin: the
 * check and the change are one transaction that first locks every active admin's row (in id order, so two
 * updates never deadlock), so two admins demoting each other at once cannot both succeed. The second waits for
 * the first, then counts again and is refused.
 */
export async function userUpdater(props: { ctx: ConsoleContext; actor: Actor; input: { userId: number; role?: string; disabled?: boolean } }) {
  const { ctx, actor, input } = props;
  authorize(actor, "update", "User");
  const role = input.role === undefined ? undefined : parseRole(input.role);
  return ctx.sequelize.transaction(async (transaction) => {
    const admins = await ctx.models.User.findAll({
      where: { role: "admin", disabledAt: null },
      order: [["id", "ASC"]],
      lock: transaction.LOCK.UPDATE,
      transaction,
    });
    // The actor's role was read before the lock: an admin demoted a moment ago by another admin changes nothing.
    if (actor.role === "admin" && !admins.some((a) => a.id === actor.id))
      throw new ForbiddenError("You are no longer an active admin (another admin changed your account a moment ago): nothing was changed.");
    const user = await ctx.models.User.findByPk(input.userId, { lock: transaction.LOCK.UPDATE, transaction });
    if (!user) throw new HttpError(404, `There is no user with id ${input.userId}.`);
    const changes: { role?: Role; disabledAt?: Date | null } = {};
    if (role !== undefined && role !== user.role) changes.role = role;
    if (input.disabled !== undefined && input.disabled !== !!user.disabledAt) changes.disabledAt = input.disabled ? new Date() : null;
    if (Object.keys(changes).length === 0) return user;
    const losesAdmin = user.role === "admin" && !user.disabledAt && ((changes.role && changes.role !== "admin") || changes.disabledAt);
    if (losesAdmin && admins.filter((a) => a.id !== user.id).length === 0)
      throw new BadRequestError("The user was not saved.", { role: "this is the last active admin: make another admin first" });
    await user.update(changes, { transaction });
    if (changes.disabledAt) await ctx.models.Session.destroy({ where: { userId: user.id }, transaction });
    await ctx.audit.append(
      {
        actor: `user:${actor.username}`,
        action: changes.disabledAt !== undefined ? (changes.disabledAt ? "user.disable" : "user.enable") : "user.role",
        target: `user:${user.username}`,
        detail: { role: changes.role },
      },
      transaction,
    );
    return user;
  });
}

/** An admin resets a user's password: a new one-time password, the user's sessions closed, any lockout lifted. */
export async function passwordResetter(props: { ctx: ConsoleContext; actor: Actor; input: { userId: number } }) {
  const { ctx, actor } = props;
  authorize(actor, "update", "User");
  const user = await loadUser(ctx, props.input.userId);
  const password = oneTimePassword();
  await ctx.sequelize.transaction(async (transaction) => {
    await user.update({ passwordHash: await hashPassword(password), mustChangePassword: true, lockedUntil: null }, { transaction });
    await ctx.models.Session.destroy({ where: { userId: user.id }, transaction });
    // Lift the lockout: earlier failures no longer count against the new password (the audit log keeps them).
    await ctx.models.LoginAttempt.destroy({ where: { username: user.username, succeeded: false }, transaction });
    await ctx.audit.append({ actor: `user:${actor.username}`, action: "user.password-reset", target: `user:${user.username}` }, transaction);
  });
  return { user, oneTimePassword: password };
}

/** On first start: the one admin, with a one-time password to print once. Nothing when users exist. */
export async function firstAdminCreator(ctx: ConsoleContext): Promise<{ username: string; oneTimePassword: string } | undefined> {
  return ctx.sequelize.transaction(async (transaction) => {
    await ctx.sequelize.query("select pg_advisory_xact_lock(hashtext('first-admin'))", { transaction });
    if ((await ctx.models.User.count({ transaction })) > 0) return undefined;
    const password = oneTimePassword();
    await ctx.models.User.create({ username: "admin", role: "admin", passwordHash: await hashPassword(password), mustChangePassword: true }, { transaction });
    await ctx.audit.append({ actor: "system", action: "user.create", target: "user:admin", detail: { role: "admin", firstStart: true } }, transaction);
    return { username: "admin", oneTimePassword: password };
  });
}
