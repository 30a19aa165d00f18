import express, { type Express } from "express";
import type { Logger } from "../logger.ts";
import { requestLogging } from "./request-logging.ts";

/** What every Express app of ours starts with: no X-Powered-By, the loopback proxy trusted, JSON access logs. */
export function createBaseApp(logger: Logger): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", "loopback");
  app.use(requestLogging(logger));
  return app;
}
