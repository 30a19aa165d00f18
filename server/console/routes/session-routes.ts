import type { Router } from "express";
import { rateLimit } from "express-rate-limit";
import { z } from "zod";
import { HttpError } from "../../shared/http-errors.ts";
import { sessionIdOf, sessionOpener } from "../commands/session-opener.ts";
import type { ConsoleContext } from "../context.ts";
import { cookieOptions, SESSION_COOKIE, signedIn } from "../session-auth.ts";

const loginForm = z.object({ username: z.string().max(200).default(""), password: z.string().max(1000).default(""), next: z.string().max(500).optional() });

/** Only same-site paths may be a redirect target after sign-in. */
function safeNext(next: string | undefined): string {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

export function sessionRoutes(router: Router, ctx: ConsoleContext, opts: { secureCookies: boolean }) {
  // Per address, on top of the per-account lockout: slows password spraying across accounts.
  const loginLimiter = rateLimit({
    windowMs: 60_000,
    limit: ctx.security.loginRateLimitPerMinute,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    handler: (_req, _res, next) => next(new HttpError(429, "Too many sign-in attempts from your address. Wait a minute and try again.")),
  });

  router.get("/login", (req, res) => {
    if (signedIn(res)) return res.redirect(303, "/");
    res.render("console/login", { title: "Sign in", next: typeof req.query.next === "string" ? req.query.next : "" });
  });

  router.post("/login", loginLimiter, async (req, res) => {
    const form = loginForm.parse(req.body ?? {});
    try {
      const { token, user, expiresAt } = await sessionOpener({
        ctx,
        input: { username: form.username, password: form.password, ip: req.ip ?? null, userAgent: req.get("user-agent") ?? null },
      });
      res.cookie(SESSION_COOKIE, token, cookieOptions(opts.secureCookies, expiresAt.getTime() - Date.now()));
      res.redirect(303, user.mustChangePassword ? "/account/password" : safeNext(form.next));
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      if (err.extra.retryAfter) res.set("retry-after", String(err.extra.retryAfter));
      res.status(err.status).render("console/login", { title: "Sign in", error: err.message, username: form.username, next: form.next });
    }
  });

  router.post("/logout", async (req, res) => {
    const s = signedIn(res);
    if (s) {
      await ctx.models.OpsSession.destroy({ where: { id: sessionIdOf(req.cookies[SESSION_COOKIE]) } });
      await ctx.audit.append({ actor: `user:${s.user.username}`, action: "logout" });
    }
    res.clearCookie(SESSION_COOKIE, cookieOptions(opts.secureCookies));
    res.redirect(303, "/login");
  });
}
