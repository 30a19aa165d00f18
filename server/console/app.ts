import path from "node:path";
import cookieParser from "cookie-parser";
import express, { type Express, type NextFunction, type Request, type Response } from "express";
import helmet from "helmet";
import type { Registry } from "prom-client";
import { ZodError } from "zod";
import type { Logger } from "../../lib/logger.ts";
import { HttpError } from "../shared/http-errors.ts";
import { createBaseApp } from "../shared/base-app.ts";
import { createViewEngine, WEB_ROOT } from "../shared/views.ts";
import type { ConsoleContext } from "./console-context.ts";
import { accountRoutes } from "../shared/auth/account-routes.ts";
import { csrfProtection, OPS_COOKIES, requireSignedIn, sessionLoader, signedIn } from "../shared/auth/session-auth.ts";
import { sessionRoutes } from "../shared/auth/session-routes.ts";
import { can } from "./policies.ts";
import { auditRoutes } from "./routes/audit-routes.ts";
import { dashboardRoutes } from "./routes/dashboard-routes.ts";
import { userRoutes } from "./routes/user-routes.ts";
import type { StatusProvider } from "./status.ts";

export interface ConsoleAppDeps {
  ctx: ConsoleContext;
  logger: Logger;
  sessionKey: Buffer;
  secureCookies: boolean;
  status: StatusProvider;
  metrics: Registry;
}

/** The ops console (admins, operators, auditors) and the agent's /metrics. */
export function createConsoleApp(deps: ConsoleAppDeps): Express {
  const app = createBaseApp(deps.logger);
  app.engine("hbs", createViewEngine());
  app.set("view engine", "hbs");
  app.set("views", path.join(WEB_ROOT, "pages"));

  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", "data:"],
          connectSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
        },
      },
      strictTransportSecurity: deps.secureCookies,
    }),
  );
  app.use((_req, res, next) => {
    res.set("cache-control", "no-store");
    next();
  });
  app.use("/static", express.static(path.join(WEB_ROOT, "static"), { index: false, fallthrough: false, maxAge: "1h" }));

  app.get("/metrics", async (_req, res) => {
    res.type(deps.metrics.contentType).send(await deps.metrics.metrics());
  });

  app.use(express.urlencoded({ extended: false, limit: "64kb" }));
  app.use(cookieParser());
  app.use(sessionLoader(deps.ctx, OPS_COOKIES));
  app.use(csrfProtection(deps.sessionKey, deps.secureCookies, OPS_COOKIES));
  app.use((_req, res, next) => {
    const s = signedIn(res);
    res.locals.me = s && { username: s.user.username, role: s.user.role, mustChangePassword: s.user.mustChangePassword };
    res.locals.nav = s && !s.user.mustChangePassword ? { users: can(s.actor, "read", "User"), audit: can(s.actor, "read", "AuditLog") } : undefined;
    next();
  });

  const open = express.Router();
  sessionRoutes(open, deps.ctx, { secureCookies: deps.secureCookies, cookies: OPS_COOKIES, loginView: "console/login", homeFor: () => "/" });
  app.use(open);

  const guarded = express.Router();
  guarded.use(requireSignedIn);
  accountRoutes(guarded, deps.ctx, { passwordView: "console/password", afterChange: "/?notice=password-changed" });
  dashboardRoutes(guarded, deps.status);
  userRoutes(guarded, deps.ctx);
  auditRoutes(guarded, deps.ctx);
  app.use(guarded);

  app.use((_req, _res, next) => next(new HttpError(404, "There is no such page.")));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = err instanceof HttpError ? err.status : err instanceof ZodError ? 400 : 500;
    const message =
      err instanceof HttpError ? err.message : err instanceof ZodError ? `The request was not understood: ${err.issues.map((i) => `${i.path.join(".") || "input"} ${i.message}`).join("; ")}` : "Something went wrong on the appliance. The error is in the agent log.";
    if (status >= 500) deps.logger.error({ err, url: req.originalUrl }, "console request failed");
    const s = signedIn(res);
    if (status === 403 && s && req.method !== "GET") {
      void deps.ctx.audit.append({ actor: `user:${s.user.username}`, action: "access.denied", outcome: "denied", target: `${req.method} ${req.path}` }).catch(() => undefined);
    }
    if (req.accepts(["html", "json"]) === "json") return res.status(status).json({ error: message });
    res.status(status).render("console/error", { title: `Error ${status}`, status, message });
  });
  return app;
}
