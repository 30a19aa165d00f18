import type { AddressInfo } from "node:net";
import { createServer } from "node:http";
import { PlumError } from "../lib/errors.ts";
import { createLogger } from "../lib/logger.ts";
import { withDeadline } from "../lib/wait.ts";
import { clientConfigFromUrl } from "../lib/db/connection-url.ts";
import { openSequelize } from "../lib/db/sequelize.ts";
import { createProductApp } from "./app.ts";
import { CLAIM_SIGNAL, productSettingsFromEnv, type AgentMessage, type InstanceMessage } from "../lib/instance-protocol.ts";

/**
 * Run one product instance. Started by the agent's runtime driver, configured by environment only
 * (the database URL carries a password, so never argv). Listens on PLUM_INSTANCE_PORT (0 = any free port)
 * and tells the agent which port it got.
 */
export async function serveProduct(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const databaseUrl = env.PLUM_PRODUCT_DATABASE_URL;
  if (!databaseUrl)
    throw new PlumError("PLUM_PRODUCT_DATABASE_URL is not set", { hint: "product instances are started by the agent (`plumctl agent`), which sets it" });
  const slot = env.PLUM_INSTANCE_SLOT ?? "production";
  const { settings, sessionKey } = productSettingsFromEnv(env);
  const logger = createLogger(`instance-${slot}`, { level: env.PLUM_LOG_LEVEL });
  const sequelize = openSequelize(clientConfigFromUrl(databaseUrl, "PLUM_PRODUCT_DATABASE_URL"));
  const app = createProductApp({
    sequelize,
    logger,
    slot,
    sessionKey,
    secureCookies: settings.cookieSecure,
    security: settings.security,
    sessionHours: settings.sessionHours,
    publicUrl: settings.publicUrl,
    trustedProxies: settings.trustedProxies,
    importMaxRows: settings.importMaxRows,
  });
  const server = createServer(app);
  server.keepAliveTimeout = 65_000; // longer than the edge proxy's idle sockets, so the proxy never reuses a closing one
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(env.PLUM_INSTANCE_PORT ?? 0), env.PLUM_INSTANCE_HOST ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, slot, pid: process.pid }, "product instance listening");
  process.send?.({ type: "ready", port } satisfies InstanceMessage);

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, "product instance stopping");
    server.closeIdleConnections();
    await withDeadline("in-flight requests to finish", 15_000, new Promise<void>((resolve) => server.close(() => resolve()))).catch(() =>
      server.closeAllConnections(),
    );
    await sequelize.close().catch(() => undefined);
    logger.flush?.();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  // The agent that started us is gone (killed): an orphan instance must not keep serving on its own. Unless it
  // handed us over (an agent restart): then we serve on while the next agent claims us, within the grace each time.
  let claimGraceMs: number | undefined;
  let claimTimer: NodeJS.Timeout | undefined;
  const awaitClaim = () => {
    clearTimeout(claimTimer);
    claimTimer = setTimeout(() => void stop(`no agent claimed this instance within ${claimGraceMs} ms of a handover`), claimGraceMs);
  };
  process.on("message", (msg: AgentMessage) => {
    if (msg?.type !== "handover") return;
    claimGraceMs = msg.graceMs;
    logger.info({ graceMs: msg.graceMs }, "handed over: serving on until the next agent claims this instance");
    process.send?.({ type: "handover-taken" } satisfies InstanceMessage);
  });
  process.on(CLAIM_SIGNAL, () => {
    if (claimGraceMs !== undefined) awaitClaim();
  });
  process.on("disconnect", () => {
    if (claimGraceMs === undefined) return void stop("agent disconnected");
    logger.info("the agent that handed this instance over has gone; waiting to be claimed");
    awaitClaim();
  });
}
