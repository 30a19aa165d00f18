import path from "node:path";
import cookieParser from "cookie-parser";
import express, { type Express } from "express";
import type { Sequelize } from "sequelize";
import type { PlumConfig } from "../lib/config.ts";
import type { Logger } from "../lib/logger.ts";
import { accountRoutes } from "../lib/http/auth/account-routes.ts";
import type { AuthUser } from "../lib/http/auth/auth-models.ts";
import { csrfProtection, PRODUCT_COOKIES, requireSignedIn, sessionLoader, signedIn } from "../lib/http/auth/session-auth.ts";
import { sessionRoutes } from "../lib/http/auth/session-routes.ts";
import { createBaseApp } from "../lib/http/base-app.ts";
import { behindEdgeProxy, type TrustedProxies } from "../lib/http/trust-proxy.ts";
import { errorHandler } from "../lib/http/error-handler.ts";
import { HttpError } from "../lib/http/http-errors.ts";
import { securityHeaders } from "../lib/http/security-headers.ts";
import { createViewEngine, WEB_ROOT } from "../lib/http/views.ts";
import { defineProductModels } from "./models/index.ts";
import { can } from "./policies.ts";
import type { ProductContext } from "./product-context.ts";
import { apiRoutes, publicRoutes, signedInRoutes } from "./routes/index.ts";
import { opsEndpoints } from "./routes/ops-endpoints.ts";

export interface ProductAppDeps {
  sequelize: Sequelize;
  logger: Logger;
  slot: string;
  /** Key for the product's CSRF tokens (derived from the appliance's session key by the agent). */
  sessionKey: Buffer;
  secureCookies: boolean;
  security: PlumConfig["security"];
  sessionHours: number;
  publicUrl?: string;
  posRateLimitPerMinute?: number;
  /** Rows one CSV import takes (imports.maxRows). */
  importMaxRows?: number;
  /**
   * Proxies in front of the agent's edge proxy whose X-Forwarded-For entries count (http.trustedProxies): the edge
   * proxy itself, the one hop every request comes through, is always trusted.
   */
  trustedProxies?: TrustedProxies;
}

/** Where each kind of product user starts. */
export function homeFor(user: Pick<AuthUser, "role">): string {
  return user.role === "manager" ? "/manage" : user.role === "merchant" ? "/merchant" : "/store";
}

/** The product (the rewards platform) as one Express app. */
export function createProductApp(deps: ProductAppDeps): Express & { productContext: ProductContext } {
  const app = createBaseApp(deps.logger, { trustProxy: behindEdgeProxy(deps.trustedProxies ?? []) });
  app.engine("hbs", createViewEngine());
  app.set("view engine", "hbs");
  app.set("views", path.join(WEB_ROOT, "pages"));
  opsEndpoints(app, deps);

  const models = defineProductModels(deps.sequelize);
  const ctx: ProductContext = {
    sequelize: deps.sequelize,
    models,
    auth: { sequelize: deps.sequelize, models: models.auth, audit: models.events, security: deps.security, sessionHours: deps.sessionHours },
    publicUrl: deps.publicUrl,
    posRateLimitPerMinute: deps.posRateLimitPerMinute,
    importMaxRows: deps.importMaxRows,
  };

  app.use(securityHeaders({ hsts: deps.secureCookies }));
  app.use("/static", express.static(path.join(WEB_ROOT, "static"), { index: false, fallthrough: false, maxAge: "1h" }));

  const api = express.Router();
  api.use(express.json({ limit: "16kb" }));
  for (const routes of apiRoutes) routes(api, ctx);
  app.use("/api", api);

  app.use((_req, res, next) => {
    res.set("cache-control", "no-store");
    next();
  });
  app.use(express.urlencoded({ extended: false, limit: "256kb" }));
  // No multipart parser here: the two CSV imports stream their file to disk (csvUpload), after the session, the
  // CSRF check (their forms send the token in the action URL) and the permission; elsewhere the body stays unread.
  app.use(cookieParser());
  app.use(sessionLoader(ctx.auth, PRODUCT_COOKIES));
  app.use(csrfProtection(deps.sessionKey, deps.secureCookies, PRODUCT_COOKIES));
  app.use((_req, res, next) => {
    const s = signedIn(res);
    res.locals.layout = "product";
    res.locals.me = s && { username: s.user.username, role: s.user.role, mustChangePassword: s.user.mustChangePassword };
    res.locals.nav =
      s && !s.user.mustChangePassword
        ? {
            manage: can(s.actor, "read", "Programme"),
            store: can(s.actor, "read", "Storefront"),
            merchant: can(s.actor, "validate", "Voucher"),
            payouts: can(s.actor, "read", "Payout"),
          }
        : undefined;
    next();
  });

  const open = express.Router();
  sessionRoutes(open, ctx.auth, { secureCookies: deps.secureCookies, cookies: PRODUCT_COOKIES, loginView: "product/login", homeFor });
  open.get("/", (_req, res) => {
    const s = signedIn(res);
    res.redirect(303, s ? homeFor(s.user) : "/login");
  });
  for (const routes of publicRoutes) routes(open, ctx);
  app.use(open);

  const guarded = express.Router();
  guarded.use(requireSignedIn);
  accountRoutes(guarded, ctx.auth, { passwordView: "product/password", afterChange: (user) => `${homeFor(user)}?notice=password-changed` });
  for (const routes of signedInRoutes) routes(guarded, ctx);
  app.use(guarded);

  app.use((_req, _res, next) => next(new HttpError(404, "There is no such page.")));
  app.use(errorHandler({ logger: deps.logger, view: "product/error", audit: models.events }));
  return Object.assign(app, { productContext: ctx });
}
