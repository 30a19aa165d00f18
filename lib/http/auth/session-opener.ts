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
 * When the lockout of a name ends, from its failed sign-ins alone (newest first, at most loginMaxFailures): locked
 * for lockoutSeconds after the failure that made loginMaxFailures within loginWindowSeconds. Refused attempts are
 * not recorded, so that failure is the newest. Only the attempts count, not whether the account exists, so an
 * unknown name locks, answers and counts down exactly as a real account does.
 */
function lockEndOf(ctx: AuthContext, failures: Array<{ at: Date }>): Date | undefined {
  const { loginMaxFailures: max, loginWindowSeconds, lockoutSeconds } = ctx.security;
  if (failures.length < max) return undefined;
  const newest = failures[0].at.getTime();
  if (newest - failures[max - 1].at.getTime() > loginWindowSeconds * 1000) return undefined;
  return new Date(newest + lockoutSeconds * 1000);
}

/**
 * Sign in: refuse while the name is locked out, count failures, lock after too many in the window, and open a
 * session (the cookie token is returned; only its hash is stored). Known and unknown names get the same answers,
 * the same Retry-After and the same work (an argon2 verification against a dummy hash for an unknown name).
 */
export async function sessionOpener(props: {
  ctx: AuthContext;
  input: { username: string; password: string; ip: string | null; userAgent: string | null };
}): Promise<{ token: string; user: AuthUser; expiresAt: Date }> {
  const { ctx } = props;
  const { User, Session, LoginAttempt } = ctx.models;
  const username = props.input.username.trim().toLowerCase();
  const now = new Date();
  const user = await User.findOne({ where: { username } });
  const failures = await LoginAttempt.findAll({
    where: { username, succeeded: false },
    order: [
      ["at", "DESC"],
      ["id", "DESC"],
    ],
    limit: ctx.security.loginMaxFailures,
    attributes: ["at"],
  });

  const lockEnd = lockEndOf(ctx, failures);
  if (lockEnd && lockEnd > now) {
    const wait = Math.max(1, Math.ceil((lockEnd.getTime() - now.getTime()) / 1000));
    await ctx.audit.append({ actor: `user:${username}`, action: "login.locked", outcome: "denied", detail: { ip: props.input.ip, retryAfterSeconds: wait } });
    throw new HttpError(429, `Too many failed sign-ins for this account. Try again in ${wait} seconds, or ask an admin to reset the password.`, {
      retryAfter: wait,
    });
  }

  const ok = user && !user.disabledAt ? await verifyPassword(user.passwordHash, props.input.password) : (await burnVerify(props.input.password), false);
  await LoginAttempt.create({ username, ip: props.input.ip, succeeded: !!ok, at: now });
  if (!ok || !user) {
    // The console's user list shows the lock; the refusal above is decided by the attempts alone.
    const locks = lockEndOf(ctx, [{ at: now }, ...failures]);
    if (user && locks && locks > now) await user.update({ lockedUntil: locks });
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
