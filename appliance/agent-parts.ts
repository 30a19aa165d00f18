import { createHmac } from "node:crypto";
import { chmodSync, rmSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";
import type { Express } from "express";
import { Gauge, type Registry } from "prom-client";
import type { PlumConfig } from "../lib/config.ts";
import { connectionUrl, type PgServer } from "../lib/db/database.ts";
import type { ProductSettings } from "../lib/instance-protocol.ts";
import { APP_VERSION } from "../lib/version.ts";
import { listenOn } from "../lib/systemd-sockets.ts";
import { withDeadline } from "../lib/wait.ts";
import type { BackupJobs } from "../backup/jobs/backup-jobs.ts";
import type { BackupOperations } from "../backup/jobs/backup-operations.ts";
import type { AuditLog } from "./audit/audit-log.ts";
import type { ApplianceStatus } from "./console/status.ts";
import type { StatusReport } from "./status/status-report.ts";
import type { RestartOutcome } from "./agent-restart.ts";
import type { AgentUpgrader } from "./agent-upgrade/agent-upgrader.ts";
import type { ReloadOutcome } from "./config-reload.ts";
import { CONTROL_ACTOR, controlApi } from "./control/control-api.ts";
import type { ControlAddress } from "./control/control-client.ts";
import type { ReleaseStore } from "./releases/release-store.ts";
import type { Production } from "./production.ts";
import type { RuntimeDriver } from "./runtimes/runtime.ts";
import type { UpgradeManager } from "./upgrade/upgrade-manager.ts";

/* The pieces the agent's start list wires: instance environment, listeners, status, gauges. */

/** The dashboard's account of the appliance: what serves production, the instances, the database, the agent. */
export async function applianceStatus(a: {
  config: PlumConfig;
  pg: PgServer & { serverVersion: string };
  runtime: RuntimeDriver;
  production: Production;
  urls: { proxy: string };
  startedAt: Date;
}): Promise<ApplianceStatus> {
  const instances = await Promise.all(
    a.runtime.list().map(async (i) => {
      const h = await a.runtime.health(i.id);
      return { id: i.id, slot: i.slot, version: i.version, url: i.url, pid: i.pid, startedAt: i.startedAt, live: h.live, ready: h.ready, detail: h.detail };
    }),
  );
  return {
    agentVersion: APP_VERSION,
    startedAt: a.startedAt,
    production: await a.production.status(),
    database: {
      mode: a.pg.embedded ? "embedded" : "external",
      host: a.pg.host,
      port: a.pg.port,
      serverVersion: a.pg.serverVersion,
      productDatabase: a.config.database.productDatabase,
      opsDatabase: a.config.database.opsDatabase,
    },
    proxy: { listening: a.urls.proxy, activeInstance: a.production.current()?.id },
    instances,
  };
}

/**
 * The environment of a product instance: its database (as the product's DML-only role: `pg` is the server as
 * that role logs in), its own session key, the product's settings.
 */
export function instanceEnv(config: PlumConfig, pg: PgServer, sessionKeySeed: Buffer, database: string): Record<string, string> {
  const settings: ProductSettings = {
    cookieSecure: config.http.cookieSecure,
    sessionHours: config.console.sessionHours,
    publicUrl: config.http.publicUrl,
    security: config.security,
    trustedProxies: config.http.trustedProxies,
    importMaxRows: config.imports.maxRows,
  };
  return {
    PLUM_PRODUCT_DATABASE_URL: connectionUrl(pg, database),
    // The product's own key, derived from the appliance's: a product instance never holds the console's key.
    PLUM_PRODUCT_SESSION_KEY: createHmac("sha256", sessionKeySeed).update("plum-product-session").digest("hex"),
    PLUM_PRODUCT_SETTINGS: JSON.stringify(settings),
    PLUM_LOG_LEVEL: config.log.level,
  };
}

export function controlRouter(deps: {
  token: string;
  jobs: BackupJobs;
  operations: BackupOperations;
  audit: AuditLog;
  manager: UpgradeManager;
  agentUpgrades: AgentUpgrader;
  releases: ReleaseStore;
  reload: (actor: string) => Promise<ReloadOutcome>;
  status: () => Promise<StatusReport>;
  restart: (opts: { stopOnly?: boolean }) => Promise<RestartOutcome>;
}) {
  const { manager, agentUpgrades, releases, reload, ...rest } = deps;
  return controlApi({ ...rest, upgrades: { manager, releases, installed: APP_VERSION, agent: agentUpgrades }, reload: () => reload(CONTROL_ACTOR) });
}

export async function listenConsole(config: PlumConfig, app: Express): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer(app);
  // A release bundle uploaded from a slow link, then verified and unpacked, takes longer than Node's 300 s default.
  server.requestTimeout = 30 * 60_000;
  const url = await new Promise<string>((resolve, reject) => {
    server.once("error", reject);
    // A socket systemd passed (plum-console.socket) survives an agent restart; else bind the address.
    server.listen(listenOn("console", config.console.port, config.console.host), () =>
      resolve(`http://${config.console.host}:${(server.address() as AddressInfo).port}`),
    );
  });
  return { server, url };
}

export async function closeConsole(server: http.Server): Promise<void> {
  server.closeIdleConnections();
  await withDeadline("console to close", 10_000, new Promise((r) => server.close(r))).catch(() => server.closeAllConnections());
}

/** The longest socket path Linux takes (sun_path is 108 bytes with its NUL); a longer home gets a loopback port. */
const SOCKET_PATH_MAX = 107;

/**
 * The control API's own listener: the Unix socket PLUM_HOME/run/control.sock, 0600 and owned by the agent's
 * user (whoever may open it is already that user or root), so neither the console's port nor any other user on
 * the host reaches it; the bearer token is still asked for. Where the path is too long for a socket, a loopback
 * port of its own. A socket left by a killed agent is ours to replace: the agent lock is held.
 */
export async function listenControl(runDir: string, app: Express): Promise<{ server: http.Server; address: ControlAddress }> {
  const server = http.createServer(app);
  // A job's NDJSON answer lasts as long as the job (a restore: hours); the client sets its own deadline.
  server.requestTimeout = 0;
  const socket = path.join(runDir, "control.sock");
  const useSocket = Buffer.byteLength(socket) <= SOCKET_PATH_MAX;
  if (useSocket) rmSync(socket, { force: true });
  const address = await new Promise<ControlAddress>((resolve, reject) => {
    server.once("error", reject);
    if (!useSocket) {
      server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
      return;
    }
    // The socket is made 0600 by the umask in force when listen() binds it (synchronously), so no one else
    // can connect in the moment before the chmod that states it.
    const umask = process.umask(0o177);
    try {
      server.listen(socket, () => resolve({ socket }));
    } finally {
      process.umask(umask);
    }
  });
  if ("socket" in address) chmodSync(address.socket, 0o600);
  return { server, address };
}

export async function closeControl(server: http.Server, address: ControlAddress): Promise<void> {
  server.closeIdleConnections();
  await withDeadline("control listener to close", 10_000, new Promise((r) => server.close(r))).catch(() => server.closeAllConnections());
  if ("socket" in address) rmSync(address.socket, { force: true });
}

export async function stopInstances(runtime: RuntimeDriver, audit: AuditLog): Promise<void> {
  for (const i of runtime.list()) {
    await runtime.stop(i.id);
    await audit.append({ actor: "agent", action: "instance.stop", target: i.id }).catch(() => undefined);
  }
}

/** Keep the health gauges and the uptime current; returns the timer. */
export function watch(registry: Registry, runtime: RuntimeDriver, startedAt: Date): NodeJS.Timeout {
  const healthy = new Gauge({
    name: "plum_instance_healthy",
    help: "1 when the instance answers /readyz",
    labelNames: ["instance", "slot", "version"],
    registers: [registry],
  });
  const uptime = new Gauge({ name: "plum_agent_uptime_seconds", help: "Seconds since the agent started", registers: [registry] });
  const tick = async () => {
    uptime.set((Date.now() - startedAt.getTime()) / 1000);
    healthy.reset();
    for (const i of runtime.list()) healthy.set({ instance: i.id, slot: i.slot, version: i.version }, (await runtime.health(i.id)).ready ? 1 : 0);
  };
  const timer = setInterval(() => void tick().catch(() => undefined), 5000);
  timer.unref();
  void tick();
  return timer;
}
