import type { NextFunction, Request, Response } from "express";
import { ZodError } from "zod";
import type { Logger } from "../logger.ts";
import type { AuditSink } from "./auth/auth-context.ts";
import { signedIn } from "./auth/session-auth.ts";
import { HttpError } from "./http-errors.ts";
import { redactUrl } from "./redact-url.ts";

/** Errors become pages (or JSON for API clients) with a message the user can act on; 5xx details stay in the log. */
export function errorHandler(opts: { logger: Logger; view: string; audit: AuditSink }) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = err instanceof HttpError ? err.status : err instanceof ZodError ? 400 : 500;
    const message =
      err instanceof HttpError
        ? err.message
        : err instanceof ZodError
          ? `The request was not understood: ${err.issues.map((i) => `${i.path.join(".") || "input"} ${i.message}`).join("; ")}`
          : "Something went wrong on our side. The error has been logged.";
    if (status >= 500) opts.logger.error({ err, url: redactUrl(req.originalUrl) }, "request failed");
    const s = signedIn(res);
    if (status === 403 && s && req.method !== "GET") {
      void opts.audit
        .append({ actor: `user:${s.user.username}`, action: "access.denied", outcome: "denied", target: `${req.method} ${redactUrl(req.path)}` })
        .catch(() => undefined);
    }
    if (res.headersSent) return res.destroy();
    if (req.accepts(["html", "json"]) === "json") return res.status(status).json({ error: message, ...(err instanceof HttpError ? err.extra : {}) });
    res.status(status).render(opts.view, { title: `Error ${status}`, status, message });
  };
}
