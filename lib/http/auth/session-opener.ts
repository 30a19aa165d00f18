import { createHash, randomBytes } from "node:crypto";
import { Op } from "sequelize";
import { HttpError } from "../http-errors.ts";
import type { AuthContext } from "./auth-context.ts";
import type { AuthUser } from "./auth-models.ts";
import { burnVerify, verifyPassword } from "./passwords.ts";

export function sessionIdOf(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * Sign in: refuse while the account is locked out, count failures, lock after too many in the window,
 * and open a session (the cookie token is returned; only its hash is stored).
 */
export async function sessionOpener(props: {
  ctx: AuthContext;
  input: { username: string; password: string; ip: string | null; userAgent: string | null };
}): Promise<{ token: string; user: AuthUser; expiresAt: Date }> {
  const { ctx } = props;
  const { User, Session, LoginAttempt } = ctx.models;
  const username = props.input.username.trim().toLowerCase();
  const now = new Date();
  const windowStart = new Date(now.getTime() - ctx.security.loginWindowSeconds * 1000);
  const user = await User.findOne({ where: { username } });

  const recentFailures = await LoginAttempt.count({ where: { username, succeeded: false, at: { [Op.gte]: windowStart } } });
  const lockedUntil = user?.lockedUntil && user.lockedUntil > now ? user.lockedUntil : undefined;
  if (lockedUntil || recentFailures >= ctx.security.loginMaxFailures) {
    const until = lockedUntil ?? new Date(now.getTime() + ctx.security.lockoutSeconds * 1000);
    const wait = Math.max(1, Math.ceil((until.getTime() - now.getTime()) / 1000));
    await ctx.audit.append({ actor: `user:${username}`, action: "login.locked", outcome: "denied", detail: { ip: props.input.ip, retryAfterSeconds: wait } });
    throw new HttpError(429, `Too many failed sign-ins for this account. Try again in ${wait} seconds, or ask an admin to reset the password.`, {
      retryAfter: wait,
    });
  }

  const ok = user && !user.disabledAt ? await verifyPassword(user.passwordHash, props.input.password) : (await burnVerify(props.input.password), false);
  await LoginAttempt.create({ username, ip: props.input.ip, succeeded: !!ok });
  if (!ok || !user) {
    if (user && recentFailures + 1 >= ctx.security.loginMaxFailures) {
      await user.update({ lockedUntil: new Date(now.getTime() + ctx.security.lockoutSeconds * 1000) });
    }
    await ctx.audit.append({
      actor: `user:${username}`,
      action: "login.failure",
      outcome: "failure",
      detail: { ip: props.input.ip, reason: !user ? "unknown user" : user.disabledAt ? "disabled" : "wrong password" },
    });
    throw new HttpError(401, "Wrong username or password.");
  }

  const token = randomBytes(32).toString("base64url");
  const expiresAt = new Date(now.getTime() + ctx.sessionHours * 3600_000);
  await Session.create({
    id: sessionIdOf(token),
    userId: user.id,
    csrfSecret: randomBytes(32).toString("base64url"),
    expiresAt,
    ip: props.input.ip,
    userAgent: props.input.userAgent?.slice(0, 300) ?? null,
  });
  await Session.destroy({ where: { expiresAt: { [Op.lt]: now } } });
  await ctx.audit.append({ actor: `user:${username}`, action: "login.success", detail: { ip: props.input.ip } });
  return { token, user, expiresAt };
}
