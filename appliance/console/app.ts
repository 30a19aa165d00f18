import path from "node:path";
import cookieParser from "cookie-parser";
import express, { type Express, type Response } from "express";
import type { Registry } from "prom-client";
import type { Logger } from "../../lib/logger.ts";
import { HttpError } from "../../lib/http/http-errors.ts";
import { errorHandler } from "../../lib/http/error-handler.ts";
import { securityHeaders } from "../../lib/http/security-headers.ts";
import { createBaseApp } from "../../lib/http/base-app.ts";
import { trustProxies, type TrustedProxies } from "../../lib/http/trust-proxy.ts";
import { createViewEngine, WEB_ROOT } from "../../lib/http/views.ts";
import type { ConsoleContext } from "./console-context.ts";
import { accountRoutes } from "../../lib/http/auth/account-routes.ts";
import { csrfProtection, OPS_COOKIES, requireSignedIn, sessionLoader, signedIn } from "../../lib/http/auth/session-auth.ts";
import { sessionRoutes } from "../../lib/http/auth/session-routes.ts";
import { can } from "./policies.ts";
import type { ConsoleUpgrades } from "../control/upgrade-control.ts";
import type { ReleaseStore } from "../releases/release-store.ts";
import { auditRoutes } from "./routes/audit-routes.ts";
import { backupRoutes, type ConsoleBackup } from "./routes/backup-routes.ts";
import { dashboardRoutes } from "./routes/dashboard-routes.ts";
import { evidenceRoutes, type EvidenceSigningKey } from "./routes/evidence-routes.ts";
import { releaseRoutes } from "./routes/release-routes.ts";
import { upgradeHistoryRoutes } from "./routes/upgrade-history-routes.ts";
import { upgradeRoutes } from "./routes/upgrade-routes.ts";
import { supportBundleRoutes } from "./routes/support-bundle-routes.ts";
import { bundleUpload } from "./uploads/bundle-upload.ts";
import { userRoutes } from "./routes/user-routes.ts";
import type { StatusProvider } from "./status.ts";

export interface ConsoleAppDeps {
  ctx: ConsoleContext;
  logger: Logger;
  sessionKey: Buffer;
  secureCookies: boolean;
  status: StatusProvider;
  metrics: Registry;
  /** The backup agent (pages for backups, restores, drills, evidence signed by `signingKey`). */
  backup?: ConsoleBackup & { signingKey: EvidenceSigningKey };
  /** The upgrade manager and the releases (pages Releases, Upgrade, History). */
  upgrades?: ConsoleUpgrades & { releases: ReleaseStore };
  /** Reverse proxies in front of the console whose X-Forwarded-For counts (console.trustedProxies); none by default. */
  trustedProxies?: TrustedProxies;
}

/** The ops console (admins, operators, auditors) and the agent's /metrics. */
export function createConsoleApp(deps: ConsoleAppDeps): Express {
  const app = createBaseApp(deps.logger, { trustProxy: trustProxies(deps.trustedProxies ?? []) });
  app.engine("hbs", createViewEngine());
  app.set("view engine", "hbs");
  app.set("views", path.join(WEB_ROOT, "pages"));

  app.use(securityHeaders({ hsts: deps.secureCookies }));
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
  const csrf = csrfProtection(deps.sessionKey, deps.secureCookies, OPS_COOKIES);
  if (deps.upgrades) {
    // Only who may import gets to write an upload to disk; everyone else's POST reaches the route as a plain form.
    const mayImport = (res: Response) => {
      const s = signedIn(res);
      return s && !s.user.mustChangePassword && can(s.actor, "operate", "Release") ? `user:${s.user.username}` : undefined;
    };
    app.use(bundleUpload({ path: "/releases", allowed: mayImport, csrf, staging: deps.upgrades.releases.uploadStaging }));
  }
  app.use(csrf);
  app.use((_req, res, next) => {
    const s = signedIn(res);
    res.locals.me = s && { username: s.user.username, role: s.user.role, mustChangePassword: s.user.mustChangePassword };
    res.locals.nav =
      s && !s.user.mustChangePassword
        ? {
            users: can(s.actor, "read", "User"),
            audit: can(s.actor, "read", "AuditLog"),
            backups: !!deps.backup && can(s.actor, "read", "Backup"),
            evidence: !!deps.backup && can(s.actor, "read", "Evidence"),
            releases: !!deps.upgrades && can(s.actor, "read", "Release"),
            upgrades: !!deps.upgrades && can(s.actor, "read", "Upgrade"),
          }
        : undefined;
    next();
  });

  const open = express.Router();
  sessionRoutes(open, deps.ctx, { secureCookies: deps.secureCookies, cookies: OPS_COOKIES, loginView: "console/login", homeFor: () => "/" });
  app.use(open);

  const guarded = express.Router();
  guarded.use(requireSignedIn);
  accountRoutes(guarded, deps.ctx, { passwordView: "console/password", afterChange: () => "/?notice=password-changed" });
  dashboardRoutes(guarded, deps.status);
  userRoutes(guarded, deps.ctx);
  auditRoutes(guarded, deps.ctx);
  if (deps.backup) evidenceRoutes(guarded, deps.ctx, deps.backup.ctx, deps.backup.signingKey);
  if (deps.backup) backupRoutes(guarded, deps.ctx, deps.backup);
  if (deps.upgrades) {
    releaseRoutes(guarded, deps.ctx, deps.upgrades);
    upgradeRoutes(guarded, deps.upgrades);
    upgradeHistoryRoutes(guarded, deps.upgrades.manager);
    supportBundleRoutes(guarded, deps.ctx, deps.upgrades.manager.supportDir);
  }
  app.use(guarded);

  app.use((_req, _res, next) => next(new HttpError(404, "There is no such page.")));
  app.use(errorHandler({ logger: deps.logger, view: "console/error", audit: deps.ctx.audit }));
  return app;
}
