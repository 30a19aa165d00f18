import express, { type Express } from "express";
import type { Logger } from "../logger.ts";
import { requestLogging } from "./request-logging.ts";
import type { TrustFunction } from "./trust-proxy.ts";

/**
 * What every Express app of ours starts with: no X-Powered-By, JSON access logs, and X-Forwarded-For believed only
 * from the proxies the caller names (lib/http/trust-proxy.ts); none unless told.
 */
export function createBaseApp(logger: Logger, opts: { trustProxy?: TrustFunction } = {}): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", opts.trustProxy ?? false);
  app.use(requestLogging(logger));
  return app;
}
