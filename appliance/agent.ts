import { createHmac } from "node:crypto";
import http from "node:http";
import type { Express } from "express";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Sequelize } from "sequelize";
import type { PlumConfig } from "../lib/config.ts";
import type { Logger } from "../lib/logger.ts";
import { homeLayout } from "../lib/paths.ts";
import type { Secrets } from "../lib/secrets.ts";
import { APP_VERSION, OPS_MIGRATIONS_DIR, PRODUCT_MIGRATIONS_DIR } from "../lib/version.ts";
import { withDeadline } from "../lib/wait.ts";
import { clientConfig, connectionUrl, pgServerFor, prepareServer, type PgServer } from "../lib/db/database.ts";
import { EmbeddedPostgres } from "../lib/db/embedded-postgres.ts";
import { migrate } from "../lib/db/migrate.ts";
import { openSequelize } from "../lib/db/sequelize.ts";
import type { ProductSettings } from "../lib/instance-protocol.ts";
import { backupContextFor } from "../backup/backup-context.ts";
import { BackupJobs } from "../backup/jobs/backup-jobs.ts";
import { backupMetrics } from "../backup/jobs/backup-metrics.ts";
import type { BackupOperations } from "../backup/jobs/backup-operations.ts";
import { backupOperationsFor } from "../backup/jobs/backup-operations-impl.ts";
import { startJob, type AgentJobRequest } from "../backup/jobs/backup-requests.ts";
import { BackupScheduler } from "../backup/jobs/backup-scheduler.ts";
import { scheduledTasks } from "../backup/jobs/backup-schedule.ts";
import { createConsoleApp } from "./console/app.ts";
import { firstAdminCreator } from "./console/commands/user-commands.ts";
import { defineOpsModels } from "./console/models/ops-models.ts";
import type { ApplianceStatus } from "./console/status.ts";
import { controlApi } from "./control/control-api.ts";
import { writeAgentEndpoint } from "./control/control-client.ts";
import { acquireAgentLock } from "./agent-lock.ts";
import { AuditLog } from "./audit/audit-log.ts";
import { Production } from "./production.ts";
import { EdgeProxy } from "./proxy/edge-proxy.ts";
import { releaseCatalogueFor } from "./releases/release-catalogue.ts";
import { ReleaseStore } from "./releases/release-store.ts";
import { ProcessRuntime } from "./runtimes/process-runtime.ts";
import type { RuntimeDriver } from "./runtimes/runtime.ts";
import { StartList } from "./start-list.ts";
import type { ReleaseCatalogue } from "./upgrade/upgrade-host.ts";
import { agentUpgradeHost } from "./upgrade/upgrade-host-adapter.ts";
import { UpgradeJournal } from "./upgrade/upgrade-journal.ts";
import { UpgradeManager } from "./upgrade/upgrade-manager.ts";

/** What a started agent is made of; every part exists once the start list has run. */
interface AgentParts {
  config: PlumConfig;
  log: Logger;
  pg: PgServer & { serverVersion: string };
  sequelize: Sequelize;
  audit: AuditLog;
  runtime: RuntimeDriver;
  production: Production;
  backupJobs: BackupJobs;
  releases: ReleaseStore;
  catalogue: ReleaseCatalogue;
  upgrades: UpgradeManager;
  consoleApp: Express;
  urls: { proxy: string; console: string };
  firstAdmin: { username: string; oneTimePassword: string } | undefined;
}

/**
 * The agent: the stable control plane. Owns the public port (edge proxy), runs product instances through a
 * runtime driver, serves the ops console and the control API, and records every lifecycle event in the audit
 * log. It starts as a list of named steps, each with its stop; a failed step, and `stop()`, run them backwards.
 */
export class Agent {
  readonly startedAt: Date;
  readonly config: PlumConfig;
  readonly log: Logger;
  readonly pg: PgServer & { serverVersion: string };
  readonly sequelize: Sequelize;
  readonly audit: AuditLog;
  readonly runtime: RuntimeDriver;
  readonly production: Production;
  readonly backupJobs: BackupJobs;
  readonly releases: ReleaseStore;
  readonly catalogue: ReleaseCatalogue;
  readonly upgrades: UpgradeManager;
  /** The ops console's Express app (served on the console port, the control API mounted in it). */
  readonly consoleApp: Express;
  readonly urls: { proxy: string; console: string };
  readonly firstAdmin: { username: string; oneTimePassword: string } | undefined;
  private stopping?: Promise<void>;

  private constructor(
    parts: AgentParts,
    private readonly steps: StartList,
    private readonly stopReason: { reason: string },
    startedAt: Date,
  ) {
    this.startedAt = startedAt;
    this.config = parts.config;
    this.log = parts.log;
    this.pg = parts.pg;
    this.sequelize = parts.sequelize;
    this.audit = parts.audit;
    this.runtime = parts.runtime;
    this.production = parts.production;
    this.backupJobs = parts.backupJobs;
    this.releases = parts.releases;
    this.catalogue = parts.catalogue;
    this.upgrades = parts.upgrades;
    this.consoleApp = parts.consoleApp;
    this.urls = parts.urls;
    this.firstAdmin = parts.firstAdmin;
  }

  /**
   * Start in order: lock, PostgreSQL, databases and migrations, ops database and audit, runtime (recover),
   * backup agent, proxy, production, upgrade manager, console and control listener, backup schedule, watch.
   */
  static async start(config: PlumConfig, secrets: Secrets, log: Logger): Promise<Agent> {
    const startedAt = new Date();
    const layout = homeLayout(config.home);
    const steps = new StartList(log);
    const stopReason = { reason: "the start failed" };
    const server = pgServerFor(config, secrets.postgresPassword);

    await steps.run(
      "lock",
      () => acquireAgentLock(layout.runDir),
      (lock) => lock.release(),
    );
    await steps.run(
      "postgresql",
      async () => {
        if (!server.embedded) return undefined;
        const embedded = new EmbeddedPostgres({
          dataDir: layout.pgData,
          port: config.database.embedded.port,
          password: secrets.postgresPassword,
          logFile: path.join(layout.logsDir, "postgres.log"),
          log,
        });
        await embedded.start();
        return embedded;
      },
      (embedded) => embedded?.stop(),
    );
    const { version: serverVersion } = await steps.run("databases", () =>
      prepareServer(server, [config.database.productDatabase, config.database.opsDatabase]),
    );
    const pg = { ...server, serverVersion };
    await steps.run("migrations", async () => {
      await migrate({ clientConfig: clientConfig(server, config.database.opsDatabase), dir: OPS_MIGRATIONS_DIR, log });
      await migrate({ clientConfig: clientConfig(server, config.database.productDatabase), dir: PRODUCT_MIGRATIONS_DIR, log });
    });
    const sequelize = await steps.run(
      "ops database",
      () => openSequelize(clientConfig(server, config.database.opsDatabase), { log }),
      async (s) => {
        // The last line of the audit log: after every instance stopped, before the database closes.
        await new AuditLog(s).append({ actor: "agent", action: "agent.stop", detail: { reason: stopReason.reason } }).catch(() => undefined);
        await s.close();
      },
    );
    const audit = new AuditLog(sequelize);
    const ctx = { sequelize, models: defineOpsModels(sequelize), audit, security: config.security, sessionHours: config.console.sessionHours };

    const { runtime, recovered } = await steps.run(
      "runtime",
      async () => {
        const runtime = new ProcessRuntime({
          runDir: layout.runDir,
          logDir: path.join(layout.logsDir, "instances"),
          log,
          stopTimeoutMs: config.instances.stopTimeoutSeconds * 1000,
          startTimeoutMs: config.instances.healthTimeoutSeconds * 1000,
          applianceId: layout.home,
        });
        return { runtime, recovered: await runtime.recover() };
      },
      ({ runtime }) => stopInstances(runtime, audit),
    );
    const firstAdmin = await steps.run("audit", async () => {
      await audit.append({
        actor: "agent",
        action: "agent.start",
        detail: { version: APP_VERSION, pid: process.pid, database: server.embedded ? "embedded" : "external", recovered },
      });
      return firstAdminCreator(ctx);
    });

    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: "plum_agent_" });
    const backupCtx = backupContextFor({ config, log, pg: server, opsSequelize: sequelize });
    const backupJobs = new BackupJobs();
    const releases = new ReleaseStore({ releasesDir: layout.releasesDir, keep: config.releases.keep, vendorPublicKey: config.releases.vendorPublicKey });
    const catalogue = releaseCatalogueFor(releases, config);
    const journal = new UpgradeJournal(sequelize);

    const proxy = new EdgeProxy({ log, registry });
    const proxyPort = await steps.run(
      "proxy",
      () => proxy.listen(config.http.port, config.http.host),
      () => proxy.close(),
    );
    const proxyHost = config.http.host === "0.0.0.0" || config.http.host === "::" ? "127.0.0.1" : config.http.host;
    const proxyUrl = `http://${proxyHost}:${proxyPort}`;
    const production = new Production({
      runtime,
      proxy,
      audit,
      log,
      instanceEnv: (database) => instanceEnv(config, pg, secrets.sessionKey, database),
      productDatabase: config.database.productDatabase,
      healthTimeoutMs: config.instances.healthTimeoutSeconds * 1000,
      servedRelease: async () => catalogue.ref((await journal.productionVersion()) ?? APP_VERSION),
    });
    const operations = backupOperationsFor(backupCtx, {
      stopProduct: () => production.detach("a restore is in progress"),
      startProduct: () => production.attach(),
    });
    const runJob = async (request: AgentJobRequest, actor: string) => {
      const job = await backupJobs.done(startJob(backupJobs, operations, request, actor).id);
      if (job.status !== "succeeded") throw new Error(`${job.label} failed: ${job.error ?? "see the Backups page"}`);
      return job.result;
    };
    const upgrades = new UpgradeManager(agentUpgradeHost({ config, log, audit, pg, runtime, production, releases: catalogue, runJob }), journal);

    await steps.run(
      "production",
      async () => {
        await upgrades.serveAtBoot(APP_VERSION, (version) => production.switchTo(catalogue.ref(version)));
        production.supervise();
      },
      () => production.close(),
    );
    await steps.run(
      "upgrade manager",
      async () => {
        const resumed = await upgrades.resume();
        if (resumed) log.warn({ resumed }, "an interrupted upgrade was found");
      },
      () => upgrades.stop(),
    );

    // The scheduler's jobs end as they end (a failed check is evidence, not a reason to skip the next task).
    const runScheduled = (request: AgentJobRequest) => backupJobs.done(startJob(backupJobs, operations, request, "scheduler").id);
    const scheduler = config.backup.scheduler ? new BackupScheduler(scheduledTasks(config.backup, backupCtx.repos, runScheduled), log) : undefined;
    const consoleApp = createConsoleApp({
      ctx,
      logger: log,
      sessionKey: secrets.sessionKey,
      secureCookies: config.console.cookieSecure,
      status: () => applianceStatus({ config, pg, runtime, production, urls: { proxy: proxyUrl }, startedAt }),
      metrics: registry,
      backup: { ctx: backupCtx, jobs: backupJobs, operations, scheduler },
      upgrades: { manager: upgrades, releases, installed: APP_VERSION },
      machineApis: [{ path: "/control", router: controlRouter(secrets.controlToken, backupJobs, operations, audit, upgrades) }],
    });
    const consoleUrl = await steps.run(
      "console and control listener",
      () => listenConsole(config, consoleApp),
      ({ server: listener }) => closeConsole(listener),
    );
    writeAgentEndpoint(layout.runDir, { pid: process.pid, consoleUrl: consoleUrl.url.replace("//0.0.0.0:", "//127.0.0.1:") });

    if (scheduler)
      await steps.run(
        "backup schedule",
        () => scheduler.start(),
        () => scheduler.stop(),
      );
    backupMetrics(registry, backupCtx);
    await steps.run(
      "watch",
      () => watch(registry, runtime, startedAt),
      (timer) => clearInterval(timer),
    );

    return new Agent(
      {
        config,
        log,
        pg,
        sequelize,
        audit,
        runtime,
        production,
        backupJobs,
        releases,
        catalogue,
        upgrades,
        consoleApp,
        urls: { proxy: proxyUrl, console: consoleUrl.url },
        firstAdmin,
      },
      steps,
      stopReason,
      startedAt,
    );
  }

  status(): Promise<ApplianceStatus> {
    return applianceStatus(this);
  }

  /** Stop: the start list backwards (schedule, console, upgrade manager, production, proxy, instances, audit, PostgreSQL, lock). */
  stop(reason = "stop requested"): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ reason }, "agent stopping");
      this.stopReason.reason = reason;
      await this.steps.stop();
      this.log.info("agent stopped");
    })();
    return this.stopping;
  }
}

/** The dashboard's account of the appliance: what serves production, the instances, the database, the agent. */
async function applianceStatus(a: {
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

/** The environment of a product instance: its database, its own session key, the product's settings. */
function instanceEnv(config: PlumConfig, pg: PgServer, sessionKeySeed: Buffer, database: string): Record<string, string> {
  const settings: ProductSettings = {
    cookieSecure: config.http.cookieSecure,
    sessionHours: config.console.sessionHours,
    publicUrl: config.http.publicUrl,
    security: config.security,
  };
  return {
    PLUM_PRODUCT_DATABASE_URL: connectionUrl(pg, database),
    // The product's own key, derived from the appliance's: a product instance never holds the console's key.
    PLUM_PRODUCT_SESSION_KEY: createHmac("sha256", sessionKeySeed).update("plum-product-session").digest("hex"),
    PLUM_PRODUCT_SETTINGS: JSON.stringify(settings),
    PLUM_LOG_LEVEL: config.log.level,
  };
}

function controlRouter(token: string, jobs: BackupJobs, operations: BackupOperations, audit: AuditLog, manager: UpgradeManager) {
  return controlApi({ token, jobs, operations, audit, upgrades: { manager, installed: APP_VERSION } });
}

async function listenConsole(config: PlumConfig, app: Express): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer(app);
  // A release bundle uploaded from a slow link, then verified and unpacked, takes longer than Node's 300 s default.
  server.requestTimeout = 30 * 60_000;
  const url = await new Promise<string>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.console.port, config.console.host, () => resolve(`http://${config.console.host}:${(server.address() as AddressInfo).port}`));
  });
  return { server, url };
}

async function closeConsole(server: http.Server): Promise<void> {
  server.closeIdleConnections();
  await withDeadline("console to close", 10_000, new Promise((r) => server.close(r))).catch(() => server.closeAllConnections());
}

async function stopInstances(runtime: RuntimeDriver, audit: AuditLog): Promise<void> {
  for (const i of runtime.list()) {
    await runtime.stop(i.id);
    await audit.append({ actor: "agent", action: "instance.stop", target: i.id }).catch(() => undefined);
  }
}

/** Keep the health gauges and the uptime current; returns the timer. */
function watch(registry: Registry, runtime: RuntimeDriver, startedAt: Date): NodeJS.Timeout {
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
