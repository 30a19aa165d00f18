import type { Router } from "express";
import { rateLimit } from "express-rate-limit";
import { z } from "zod";
import { HttpError } from "../http-errors.ts";
import type { AuthContext } from "./auth-context.ts";
import type { AuthUser } from "./auth-models.ts";
import { burnVerify } from "./passwords.ts";
import { sessionIdOf, sessionOpener } from "./session-opener.ts";
import { cookieOptions, signedIn, type AuthCookies } from "./session-auth.ts";

const loginForm = z.object({ username: z.string().max(200).default(""), password: z.string().max(1000).default(""), next: z.string().max(500).optional() });

/** Only same-site paths may be a redirect target after sign-in. */
function safeNext(next: string | undefined): string | undefined {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : undefined;
}

export interface SessionRouteOptions {
  secureCookies: boolean;
  cookies: AuthCookies;
  loginView: string;
  /** Where a user lands after signing in, unless the sign-in form carried a `next` path. */
  homeFor: (user: AuthUser) => string;
}

/** GET/POST /login and POST /logout: the same sign-in for the console and the product. */
export function sessionRoutes(router: Router, ctx: AuthContext, opts: SessionRouteOptions) {
  // The dummy hash an unknown name is verified against, made now: the first unknown name then costs what a known one does.
  void burnVerify("");
  // Per address, on top of the per-account lockout: slows password spraying across accounts.
  const loginLimiter = rateLimit({
    windowMs: 60_000,
    limit: ctx.security.loginRateLimitPerMinute,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    handler: (_req, _res, next) => next(new HttpError(429, "Too many sign-in attempts from your address. Wait a minute and try again.")),
  });

  router.get("/login", (req, res) => {
    const s = signedIn(res);
    if (s) return res.redirect(303, opts.homeFor(s.user));
    res.render(opts.loginView, { title: "Sign in", next: typeof req.query.next === "string" ? req.query.next : "" });
  });

  router.post("/login", loginLimiter, async (req, res) => {
    const form = loginForm.parse(req.body ?? {});
    try {
      const { token, user, expiresAt } = await sessionOpener({
        ctx,
        input: { username: form.username, password: form.password, ip: req.ip ?? null, userAgent: req.get("user-agent") ?? null },
      });
      res.cookie(opts.cookies.session, token, cookieOptions(opts.secureCookies, expiresAt.getTime() - Date.now()));
      res.redirect(303, user.mustChangePassword ? "/account/password" : (safeNext(form.next) ?? opts.homeFor(user)));
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      if (err.extra.retryAfter) res.set("retry-after", String(err.extra.retryAfter));
      res.status(err.status).render(opts.loginView, { title: "Sign in", error: err.message, username: form.username, next: form.next });
    }
  });

  router.post("/logout", async (req, res) => {
    const s = signedIn(res);
    if (s) {
      await ctx.models.Session.destroy({ where: { id: sessionIdOf(req.cookies[opts.cookies.session]) } });
      await ctx.audit.append({ actor: `user:${s.user.username}`, action: "logout" });
    }
    res.clearCookie(opts.cookies.session, cookieOptions(opts.secureCookies));
    res.redirect(303, "/login");
  });
}
