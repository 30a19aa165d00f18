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
import { sleep, waitFor, withDeadline } from "../lib/wait.ts";
import { createConsoleApp } from "./console/app.ts";
import { firstAdminCreator } from "./console/commands/user-commands.ts";
import type { ConsoleContext } from "./console/console-context.ts";
import { defineOpsModels } from "./console/models/ops-models.ts";
import type { ApplianceStatus } from "./console/status.ts";
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
import { startJob, type JobRequest } from "../backup/jobs/backup-requests.ts";
import { BackupScheduler } from "../backup/jobs/backup-scheduler.ts";
import { writeAgentEndpoint } from "./control/control-client.ts";
import { acquireAgentLock } from "./agent-lock.ts";
import { AuditLog } from "./audit/audit-log.ts";
import { EdgeProxy } from "./proxy/edge-proxy.ts";
import { releaseCatalogueFor } from "./releases/release-catalogue.ts";
import type { ReleaseStore } from "./releases/release-store.ts";
import { releaseStoreFor } from "./releases/release-importer.ts";
import { reloadAgentConfig, type ReloadOutcome } from "./config-reload.ts";
import { ProcessRuntime } from "./runtimes/process-runtime.ts";
import type { InstanceInfo, ReleaseRef, RuntimeDriver, Slot } from "./runtimes/runtime.ts";
import type { ReleaseCatalogue, UpgradeHost } from "./upgrade/upgrade-host.ts";
import { UpgradeJournal } from "./upgrade/upgrade-journal.ts";
import { UpgradeManager } from "./upgrade/upgrade-manager.ts";
import { scratchRestorer } from "../backup/restore/scratch-restorer.ts";
import { Restic } from "../backup/restic/restic.ts";
import type { BackupContext } from "../backup/backup-context.ts";

const RESTARTS_ALLOWED = 5; // unexpected instance exits restarted within RESTART_WINDOW_MS before giving up
const RESTART_WINDOW_MS = 5 * 60_000;

/**
 * The agent: the stable control plane. Owns the public port (edge proxy), runs product instances through a
 * runtime driver, serves the ops console, and records every lifecycle event in the audit log.
 */
export class Agent {
  readonly startedAt = new Date();
  private stopping?: Promise<void>;
  private healthTimer?: NodeJS.Timeout;
  private readonly restarts: number[] = [];
  /** The ops console's Express app (served on the console port). */
  consoleApp!: Express;
  upgrades!: UpgradeManager;
  releases!: ReleaseStore;
  catalogue!: ReleaseCatalogue;

  private constructor(
    readonly config: PlumConfig,
    readonly log: Logger,
    readonly pg: PgServer & { serverVersion: string },
    private readonly embedded: EmbeddedPostgres | undefined,
    readonly sequelize: Sequelize,
    readonly audit: AuditLog,
    readonly runtime: RuntimeDriver,
    readonly proxy: EdgeProxy,
    private readonly consoleServer: http.Server,
    private readonly lock: { release(): void },
    readonly urls: { proxy: string; console: string },
    readonly firstAdmin: { username: string; oneTimePassword: string } | undefined,
    private readonly productKeySeed: Buffer,
    readonly backupJobs: BackupJobs,
  ) {}

  private scheduler?: BackupScheduler;

  /** Scheduled sets (each copied, then retention applied), integrity checks and restore drills. */
  scheduleBackups(ops: BackupOperations): BackupScheduler {
    const { backup } = this.config;
    const run = (request: JobRequest) => this.backupJobs.done(startJob(this.backupJobs, ops, request, "scheduler").id);
    this.scheduler = new BackupScheduler(
      [
        {
          name: "backup",
          cron: backup.schedule,
          run: async () => {
            await run({ kind: "backup", setKind: "scheduled" });
            await run({ kind: "forget" }); // retention after each scheduled set
          },
        },
        { name: "check", cron: backup.checkSchedule, run: () => run({ kind: "check", role: "primary" }) },
        { name: "drill", cron: backup.drillSchedule, run: () => run({ kind: "drill" }) },
      ],
      this.log,
    );
    this.scheduler.start();
    return this.scheduler;
  }

  /** Read plum.yaml again and apply what is safe live (config-reload.ts); `plumctl config reload` and SIGHUP. */
  reloadConfig(actor: string): Promise<ReloadOutcome> {
    return reloadAgentConfig(this, actor);
  }

  /** Take production traffic off and stop the production instance (for a restore); the proxy answers 503 meanwhile. */
  async stopProduction(reason: string): Promise<void> {
    const current = this.proxy.detach(reason);
    if (!current) return;
    await this.proxy.drain(current.id, 30_000).catch(() => undefined);
    await this.runtime.stop(current.id);
    await this.audit.append({ actor: "agent", action: "instance.stop", target: current.id, detail: { reason } });
  }

  /** Boot in order: lock, PostgreSQL, databases and migrations, audit, instances, proxy, console. */
  static async start(config: PlumConfig, secrets: Secrets, log: Logger): Promise<Agent> {
    const layout = homeLayout(config.home);
    const lock = acquireAgentLock(layout.runDir);
    const cleanup: Array<() => Promise<unknown>> = [async () => lock.release()];
    try {
      const server = pgServerFor(config, secrets.postgresPassword);
      let embedded: EmbeddedPostgres | undefined;
      if (server.embedded) {
        embedded = new EmbeddedPostgres({
          dataDir: layout.pgData,
          port: config.database.embedded.port,
          password: secrets.postgresPassword,
          logFile: path.join(layout.logsDir, "postgres.log"),
          log,
        });
        await embedded.start();
        cleanup.unshift(() => embedded!.stop());
      }
      const { version: serverVersion } = await prepareServer(server, [config.database.productDatabase, config.database.opsDatabase]);
      await migrate({ clientConfig: clientConfig(server, config.database.opsDatabase), dir: OPS_MIGRATIONS_DIR, log });
      await migrate({ clientConfig: clientConfig(server, config.database.productDatabase), dir: PRODUCT_MIGRATIONS_DIR, log });

      const sequelize = openSequelize(clientConfig(server, config.database.opsDatabase), { log });
      cleanup.unshift(() => sequelize.close());
      const audit = new AuditLog(sequelize);
      const ctx: ConsoleContext = {
        sequelize,
        models: defineOpsModels(sequelize),
        audit,
        security: config.security,
        sessionHours: config.console.sessionHours,
      };

      const runtime = new ProcessRuntime({
        runDir: layout.runDir,
        logDir: path.join(layout.logsDir, "instances"),
        log,
        stopTimeoutMs: config.instances.stopTimeoutSeconds * 1000,
        startTimeoutMs: config.instances.healthTimeoutSeconds * 1000,
        applianceId: layout.home,
      });
      const recovered = await runtime.recover();
      await audit.append({
        actor: "agent",
        action: "agent.start",
        detail: { version: APP_VERSION, pid: process.pid, database: server.embedded ? "embedded" : "external", recovered },
      });
      const firstAdmin = await firstAdminCreator(ctx);

      const backupCtx = backupContextFor({ config, log, pg: server, opsSequelize: sequelize });
      const jobs = new BackupJobs();

      const registry = new Registry();
      collectDefaultMetrics({ register: registry, prefix: "plum_agent_" });
      const proxy = new EdgeProxy({ log, registry });
      const proxyPort = await proxy.listen(config.http.port, config.http.host);
      cleanup.unshift(() => proxy.close());

      const consoleServer = http.createServer();
      // A release bundle uploaded from a slow link, then verified and unpacked, takes longer than Node's 300 s default.
      consoleServer.requestTimeout = 30 * 60_000;
      const consoleUrl = await new Promise<string>((resolve, reject) => {
        consoleServer.once("error", reject);
        consoleServer.listen(config.console.port, config.console.host, () =>
          resolve(`http://${config.console.host}:${(consoleServer.address() as AddressInfo).port}`),
        );
      });
      cleanup.unshift(() => new Promise((r) => consoleServer.close(r)));
      const proxyHost = config.http.host === "0.0.0.0" || config.http.host === "::" ? "127.0.0.1" : config.http.host;
      const pgInfo = { ...server, serverVersion };
      const agent = new Agent(
        config,
        log,
        pgInfo,
        embedded,
        sequelize,
        audit,
        runtime,
        proxy,
        consoleServer,
        lock,
        { proxy: `http://${proxyHost}:${proxyPort}`, console: consoleUrl },
        firstAdmin,
        secrets.sessionKey,
        jobs,
      );
      const operations = backupOperationsFor(backupCtx, {
        stopProduct: () => agent.stopProduction("a restore is in progress"),
        startProduct: () => agent.startProduction().then(() => undefined),
      });
      agent.releases = releaseStoreFor(config);
      agent.catalogue = releaseCatalogueFor(agent.releases, config);
      agent.upgrades = new UpgradeManager(agent.upgradeHost(backupCtx, jobs, operations), new UpgradeJournal(sequelize));
      const scheduler = config.backup.scheduler ? agent.scheduleBackups(operations) : undefined;
      backupMetrics(registry, backupCtx);
      agent.consoleApp = createConsoleApp({
        ctx,
        logger: log,
        sessionKey: secrets.sessionKey,
        secureCookies: config.console.cookieSecure,
        status: () => agent.status(),
        metrics: registry,
        backup: { ctx: backupCtx, jobs, operations, scheduler, controlToken: secrets.controlToken, signingKey: secrets },
        upgrades: { manager: agent.upgrades, releases: agent.releases, installed: APP_VERSION },
        reload: () => agent.reloadConfig("cli"),
      });
      consoleServer.on("request", agent.consoleApp);
      cleanup.unshift(() => agent.stopInstances());
      agent.watch(registry);
      writeAgentEndpoint(layout.runDir, { pid: process.pid, consoleUrl: consoleUrl.replace("//0.0.0.0:", "//127.0.0.1:"), proxyUrl: agent.urls.proxy });
      cleanup.unshift(() => agent.upgrades.stop());
      await agent.startProduction().catch(async (err) => {
        const previous = await agent.upgrades.fallBack((err as Error).message);
        if (!previous) throw err;
        log.error({ err, previous }, "the promoted release does not start: serving the previous one");
        await agent.startProduction();
      });
      const resumed = await agent.upgrades.resume();
      if (resumed) log.warn({ resumed }, "an interrupted upgrade was found");
      return agent;
    } catch (err) {
      for (const step of cleanup) await step().catch(() => undefined);
      throw err;
    }
  }

  private instanceEnv(database = this.config.database.productDatabase): Record<string, string> {
    const settings: ProductSettings = {
      cookieSecure: this.config.http.cookieSecure,
      sessionHours: this.config.console.sessionHours,
      publicUrl: this.config.http.publicUrl,
      security: this.config.security,
    };
    return {
      PLUM_PRODUCT_DATABASE_URL: connectionUrl(this.pg, database),
      // The product's own key, derived from the appliance's: a product instance never holds the console's key.
      PLUM_PRODUCT_SESSION_KEY: createHmac("sha256", this.productKeySeed).update("plum-product-session").digest("hex"),
      PLUM_PRODUCT_SETTINGS: JSON.stringify(settings),
      PLUM_LOG_LEVEL: this.config.log.level,
    };
  }

  /** The release production runs: the upgrade journal's pointer, or the installed release before any upgrade. */
  async productionRelease(): Promise<ReleaseRef> {
    return this.catalogue.ref(await this.upgrades.productionVersion(APP_VERSION));
  }

  /** Start a release in a slot against a database, wait until it is ready (deadline), stop it again if it never is. */
  async startReady(slot: Slot, release: ReleaseRef, database: string): Promise<InstanceInfo> {
    const instance = await this.runtime.start({ slot, release, env: this.instanceEnv(database) });
    try {
      await waitFor(
        `instance ${instance.id} to become ready`,
        async () => {
          const h = await this.runtime.health(instance.id);
          if (!h.ready) throw new Error(h.detail);
          return true;
        },
        { timeoutMs: this.config.instances.healthTimeoutSeconds * 1000, firstDelayMs: 25, maxDelayMs: 250 },
      );
    } catch (err) {
      await this.runtime.stop(instance.id);
      await this.audit.append({ actor: "agent", action: "instance.start", target: instance.id, outcome: "failure", detail: { error: (err as Error).message } });
      throw err;
    }
    await this.audit.append({ actor: "agent", action: "instance.start", target: instance.id, detail: { pid: instance.pid, url: instance.url, database } });
    return instance;
  }

  /** Start the production instance of the production release, wait until it is ready, then give it the traffic. */
  async startProduction(): Promise<InstanceInfo> {
    const instance = await this.startReady("production", await this.productionRelease(), this.config.database.productDatabase);
    this.proxy.switchTo({ id: instance.id, version: instance.version, url: instance.url });
    return instance;
  }

  /** What the upgrade manager drives: this agent's runtime, proxy, databases and backup agent. */
  private upgradeHost(backupCtx: BackupContext, jobs: BackupJobs, operations: BackupOperations): UpgradeHost {
    const runJob = async (request: JobRequest, actor: string) => {
      const job = await this.backupJobs.done(startJob(jobs, operations, request, actor).id);
      if (job.status !== "succeeded") throw new Error(`${job.label} failed: ${job.error ?? "see the Backups page"}`);
      return job.result;
    };
    return {
      config: this.config,
      log: this.log,
      audit: this.audit,
      runtime: this.runtime,
      proxy: this.proxy,
      pg: this.pg,
      releases: this.catalogue,
      startReady: (slot, release, database) => this.startReady(slot, release, database),
      snapshot: async (actor) => {
        const set = (await runJob({ kind: "backup", setKind: "pre-upgrade" }, actor)) as { id: string; startedAt: Date };
        return { setId: set.id, takenAt: set.startedAt };
      },
      restoreInto: async (setId, database) => {
        const set = await backupCtx.sets.findByPk(setId);
        if (!set) throw new Error(`backup set ${setId} is not in the catalogue`);
        const restored = await scratchRestorer({
          ctx: backupCtx,
          restic: new Restic({ log: this.log }),
          set,
          repo: backupCtx.repos.primary,
          target: { database },
        });
        return { checks: restored.checks.length, failed: restored.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail ?? ""}`) };
      },
      restoreProduction: async (setId, actor) => {
        await runJob({ kind: "restore", setId, db: true, files: false, from: "primary" }, actor);
      },
    };
  }

  /** Keep health gauges current; restart a production instance that died, a bounded number of times. */
  private watch(registry: Registry): void {
    const healthy = new Gauge({
      name: "plum_instance_healthy",
      help: "1 when the instance answers /readyz",
      labelNames: ["instance", "slot", "version"],
      registers: [registry],
    });
    const uptime = new Gauge({ name: "plum_agent_uptime_seconds", help: "Seconds since the agent started", registers: [registry] });
    const tick = async () => {
      uptime.set((Date.now() - this.startedAt.getTime()) / 1000);
      healthy.reset();
      for (const i of this.runtime.list()) healthy.set({ instance: i.id, slot: i.slot, version: i.version }, (await this.runtime.health(i.id)).ready ? 1 : 0);
    };
    this.healthTimer = setInterval(() => void tick().catch(() => undefined), 5000);
    this.healthTimer.unref();
    void tick();
    this.runtime.onUnexpectedExit((instance, how) => void this.onInstanceDied(instance, how));
  }

  private async onInstanceDied(instance: InstanceInfo, how: string): Promise<void> {
    if (this.stopping) return;
    this.log.error({ instance: instance.id, how }, "instance exited unexpectedly");
    await this.audit.append({ actor: "agent", action: "instance.exit", target: instance.id, outcome: "failure", detail: { how } }).catch(() => undefined);
    if (instance.slot !== "production" || this.proxy.current?.id !== instance.id) return;
    const now = Date.now();
    while (this.restarts.length > 0 && this.restarts[0] < now - RESTART_WINDOW_MS) this.restarts.shift();
    if (this.restarts.length >= RESTARTS_ALLOWED) {
      this.log.error({ instance: instance.id }, "instance keeps dying; not restarting it again (see its log)");
      return;
    }
    this.restarts.push(now);
    await sleep(500 * 2 ** (this.restarts.length - 1));
    // Meanwhile a rollback may have switched away from this release: never bring it back.
    const stillServes = this.proxy.current?.id === instance.id && (await this.upgrades.productionVersion(APP_VERSION)) === instance.version;
    if (!this.stopping && stillServes) await this.startProduction().catch((err) => this.log.error({ err }, "restarting the production instance failed"));
  }

  async status(): Promise<ApplianceStatus> {
    const instances = await Promise.all(
      this.runtime.list().map(async (i) => {
        const h = await this.runtime.health(i.id);
        return { id: i.id, slot: i.slot, version: i.version, url: i.url, pid: i.pid, startedAt: i.startedAt, live: h.live, ready: h.ready, detail: h.detail };
      }),
    );
    return {
      version: APP_VERSION,
      startedAt: this.startedAt,
      database: {
        mode: this.pg.embedded ? "embedded" : "external",
        host: this.pg.host,
        port: this.pg.port,
        serverVersion: this.pg.serverVersion,
        productDatabase: this.config.database.productDatabase,
        opsDatabase: this.config.database.opsDatabase,
      },
      proxy: { listening: this.urls.proxy, activeInstance: this.proxy.current?.id },
      instances,
    };
  }

  private async stopInstances(): Promise<void> {
    for (const i of this.runtime.list()) {
      await this.runtime.stop(i.id);
      await this.audit.append({ actor: "agent", action: "instance.stop", target: i.id }).catch(() => undefined);
    }
  }

  /** Stop in reverse order: console, proxy (in-flight requests finish), instances, audit, PostgreSQL. */
  stop(reason = "stop requested"): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.healthTimer);
      this.scheduler?.stop();
      await this.upgrades?.stop();
      this.log.info({ reason }, "agent stopping");
      this.consoleServer.closeIdleConnections();
      await withDeadline("console to close", 10_000, new Promise((r) => this.consoleServer.close(r))).catch(() => this.consoleServer.closeAllConnections());
      await this.proxy.close();
      await this.stopInstances();
      await this.audit.append({ actor: "agent", action: "agent.stop", detail: { reason } }).catch(() => undefined);
      await this.sequelize.close().catch(() => undefined);
      await this.embedded?.stop();
      this.lock.release();
      this.log.info("agent stopped");
    })();
    return this.stopping;
  }
}
