import type { Express } from "express";
import path from "node:path";
import { Registry, collectDefaultMetrics } from "prom-client";
import type { Sequelize } from "sequelize";
import { anchorSettingsOf } from "../lib/chain-anchors.ts";
import { ChainCheckpoints } from "../lib/chain-checkpoints.ts";
import type { PlumConfig } from "../lib/config.ts";
import type { Logger } from "../lib/logger.ts";
import { APP_ROOT, homeLayout } from "../lib/paths.ts";
import type { Secrets } from "../lib/secrets.ts";
import { listenOn } from "../lib/systemd-sockets.ts";
import { APP_VERSION, expectedSchemaVersion, OPS_MIGRATIONS_DIR, PRODUCT_MIGRATIONS_DIR } from "../lib/version.ts";
import { clientConfig, pgServerFor, prepareServer, type PgServer } from "../lib/db/database.ts";
import { EmbeddedPostgres } from "../lib/db/embedded-postgres.ts";
import { migrate } from "../lib/db/migrate.ts";
import { closeAdminDatabases, migrateProductDatabase, productRolesOf, roleServer } from "../lib/db/product-roles.ts";
import { openSequelize } from "../lib/db/sequelize.ts";
import { appendOnlyServersFor, backupContextFor } from "../backup/backup-context.ts";
import { assertSafeToCreateProductDatabase, recoveryLines, restoreRecovery } from "../backup/restore/restore-recovery.ts";
import { BackupJobs } from "../backup/jobs/backup-jobs.ts";
import { backupMetrics } from "../backup/jobs/backup-metrics.ts";
import { backupOperationsFor } from "../backup/jobs/backup-operations-impl.ts";
import { startJob, type AgentJobRequest } from "../backup/jobs/backup-requests.ts";
import { BackupScheduler } from "../backup/jobs/backup-scheduler.ts";
import { scheduledTasks } from "../backup/jobs/backup-schedule.ts";
import { createConsoleApp } from "./console/app.ts";
import { firstAdminCreator } from "./console/commands/user-commands.ts";
import { defineOpsModels } from "./console/models/ops-models.ts";
import type { ApplianceStatus } from "./console/status.ts";
import { CONTROL_ACTOR, createControlApp } from "./control/control-api.ts";
import { writeAgentEndpoint, type ControlAddress } from "./control/control-client.ts";
import { acquireAgentLock } from "./agent-lock.ts";
import { restartWithHandover } from "./agent-restart.ts";
import { AgentUpgrader, installedAgentOf } from "./agent-upgrade/agent-upgrader.ts";
import { clearHandover, HANDOVER_GRACE_MS, readHandover, writeHandover } from "./handover.ts";
import { applianceStatus, closeConsole, closeControl, controlRouter, instanceEnv, listenConsole, listenControl, stopInstances, watch } from "./agent-parts.ts";
import { auditForwarding } from "./audit/audit-forwarding.ts";
import { AuditLog } from "./audit/audit-log.ts";
import { auditRecoveredRestores, startAuditedJob } from "./audit/backup-job-audit.ts";
import { Production } from "./production.ts";
import { EdgeProxy } from "./proxy/edge-proxy.ts";
import { releaseCatalogueFor } from "./releases/release-catalogue.ts";
import type { ReleaseStore } from "./releases/release-store.ts";
import { productionReleaseAtRest } from "./releases/production-release.ts";
import { releaseStoreFor } from "./releases/release-importer.ts";
import { reloadAgentConfig, type ReloadOutcome } from "./config-reload.ts";
import { runtimeFor } from "./runtimes/runtime-for.ts";
import type { RuntimeDriver } from "./runtimes/runtime.ts";
import { StartList } from "./start-list.ts";
import { statusGatherer } from "./status/status-gatherer.ts";
import type { ReleaseCatalogue } from "./upgrade/upgrade-host.ts";
import type { DoctorChecks } from "./support/support-bundle.ts";
import { agentUpgradeHost } from "./upgrade/upgrade-host-adapter.ts";
import { UpgradeJournal } from "./upgrade/upgrade-journal.ts";
import { UpgradeManager } from "./upgrade/upgrade-manager.ts";

/** What the command that starts the agent brings from the layers above it. */
export interface AgentOptions {
  /** The `doctor` preflight checks (installer/), for the support bundle of an unsuccessful upgrade. */
  doctor?: DoctorChecks;
}

/** Whether the stop is a handover, and what it left running (the lock's stop writes them to run/handover.json). */
interface HandoverState {
  requested: boolean;
  instances: string[];
  postgres?: number;
}

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
  controlApp: Express;
  urls: { proxy: string; console: string; control: ControlAddress };
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
  /** The ops console's Express app (served on the console port; it does not answer the control API). */
  readonly consoleApp: Express;
  /** The control API's Express app (served on its own listener, `urls.control`). */
  readonly controlApp: Express;
  readonly urls: { proxy: string; console: string; control: ControlAddress };
  readonly firstAdmin: { username: string; oneTimePassword: string } | undefined;
  private stopping?: Promise<void>;

  private constructor(
    parts: AgentParts,
    private readonly steps: StartList,
    private readonly stopReason: { reason: string },
    private readonly handover: HandoverState,
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
    this.controlApp = parts.controlApp;
    this.urls = parts.urls;
    this.firstAdmin = parts.firstAdmin;
  }

  /**
   * Start in order: lock, PostgreSQL, the ops database (migrated, opened), runtime (orphans stopped), restore
   * recovery, the product database (created if missing, migrated), audit, backup agent, proxy, production,
   * upgrade manager, console and control listener, backup schedule, watch.
   */
  static async start(config: PlumConfig, secrets: Secrets, log: Logger, options: AgentOptions = {}): Promise<Agent> {
    const startedAt = new Date();
    const layout = homeLayout(config.home);
    const steps = new StartList(log);
    const stopReason = { reason: "the start failed" };
    // What the previous agent handed over (an agent restart or upgrade): adopted below instead of stopped.
    const handedOver = readHandover(layout.runDir);
    const handover: HandoverState = { requested: false, instances: [] };
    const server = pgServerFor(config, secrets.postgresPassword);
    const adopted: string[] = [];

    await steps.run(
      "lock",
      () => acquireAgentLock(layout.runDir),
      (lock) => {
        // Last, under the lock: the next agent reads it once this one is gone.
        if (handover.requested)
          writeHandover(layout.runDir, {
            at: new Date().toISOString(),
            fromPid: process.pid,
            fromVersion: APP_VERSION,
            instances: handover.instances,
            postgres: handover.postgres,
          });
        lock.release();
      },
    );
    // Before PostgreSQL: product containers reach it on their network, where it must listen too.
    const { runtime, containerNetwork } = await steps.run(
      "runtime engine",
      async () => {
        const runtime = await runtimeFor(config, layout, log);
        return { runtime, containerNetwork: await runtime.prepare?.() };
      },
      ({ runtime }) => runtime.dispose?.(),
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
          containerNetwork,
        });
        const how = await embedded.start({ adopt: handedOver?.postgres });
        if (how === "adopted") adopted.push("adopted the embedded PostgreSQL handed over by the previous agent");
        return embedded;
      },
      async (embedded) => {
        if (handover.requested) handover.postgres = embedded?.handOver();
        else await embedded?.stop();
      },
    );
    // plum_ops first, alone: the restore journal in it decides what the product database may be.
    const { version: serverVersion } = await steps.run("ops database", async () => {
      const prepared = await prepareServer(server, [config.database.opsDatabase]);
      await closeAdminDatabases(server, [config.database.opsDatabase]);
      return prepared;
    });
    const pg = { ...server, serverVersion };
    await steps.run("ops migrations", () => migrate({ clientConfig: clientConfig(server, config.database.opsDatabase), dir: OPS_MIGRATIONS_DIR, log }));
    // Before the ops connection, so that its stop (the agent.stop row) is still forwarded.
    const forwarding = await steps.run(
      "syslog forwarding",
      () => auditForwarding(config, log, "plum-agent"),
      (f) => f?.close(),
    );
    const sequelize = await steps.run(
      "ops connection",
      () => openSequelize(clientConfig(server, config.database.opsDatabase), { log }),
      async (s) => {
        // The last line of the audit log: after every instance stopped, before the database closes.
        await new AuditLog(s).append({ actor: "agent", action: "agent.stop", detail: { reason: stopReason.reason } }).catch(() => undefined);
        await s.close();
      },
    );
    forwarding?.watch(sequelize);
    const anchors = anchorSettingsOf(config.home, secrets);
    const audit = new AuditLog(sequelize, anchors);
    // Every hash chain of plum_ops, signed into PLUM_HOME/anchors: what moved while the agent was away first.
    await steps.run(
      "checkpoints",
      async () => {
        const checkpoints = new ChainCheckpoints({ sequelize, settings: anchors, ...config.audit.anchors, log });
        await checkpoints.start();
        return checkpoints;
      },
      (checkpoints) => checkpoints.stop(),
    );
    const ctx = { sequelize, models: defineOpsModels(sequelize), audit, security: config.security, sessionHours: config.console.sessionHours };

    const { recovered } = await steps.run(
      "runtime",
      async () => {
        // Orphaned instances go first (docker: running containers are adopted, they kept serving): one still
        // connected to the product database would hold up a swap back.
        return { runtime, recovered: [...adopted, ...(await runtime.recover(handedOver?.instances))] };
      },
      async ({ runtime }) => {
        // A handover leaves the instances serving (the proxy drained before): the next agent adopts them.
        if (handover.requested && runtime.handOver) handover.instances = await runtime.handOver(HANDOVER_GRACE_MS);
        await stopInstances(runtime, audit);
      },
    );
    // Every restic command of this agent goes through these servers (backup.appendOnly); each starts on first use.
    const appendOnly = await steps.run(
      "append-only repositories",
      () => (config.backup.appendOnly ? appendOnlyServersFor(config, log) : undefined),
      (servers) => servers?.stop(),
    );
    // Production is not started yet: what it runs is the upgrade journal's pointer, as plumctl reads it without an agent.
    const recoveryCtx = backupContextFor({
      config,
      log,
      pg: server,
      opsSequelize: sequelize,
      appendOnly,
      production: () => productionReleaseAtRest(config, sequelize),
    });
    // Before anything creates or migrates a missing product database: an interrupted restore is finished or
    // undone, and an empty `plum` is never made while the real data may be parked beside it.
    const restoresRecovered = await steps.run("restore recovery", async () => {
      const recovery = await restoreRecovery({ ctx: recoveryCtx, by: "agent start" });
      await auditRecoveredRestores(audit, recovery);
      await assertSafeToCreateProductDatabase(recoveryCtx);
      return recoveryLines(recovery);
    });
    const roles = productRolesOf(config.database.roles, layout.secretsDir);
    await steps.run("product database", async () => {
      const product = config.database.productDatabase;
      await prepareServer(server, [product]);
      await migrateProductDatabase(server, product, roles, { dir: PRODUCT_MIGRATIONS_DIR, log });
    });
    const firstAdmin = await steps.run("audit", async () => {
      await audit.append({
        actor: "agent",
        action: "agent.start",
        detail: {
          version: APP_VERSION,
          pid: process.pid,
          database: server.embedded ? "embedded" : "external",
          recovered: [...recovered, ...restoresRecovered],
        },
      });
      return firstAdminCreator(ctx);
    });

    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: "plum_agent_" });
    const backupJobs = new BackupJobs();
    const releases = releaseStoreFor(config);
    const catalogue = releaseCatalogueFor(releases, config);
    const journal = new UpgradeJournal(sequelize);

    const proxy = new EdgeProxy({ log, registry });
    // A socket systemd passed keeps queueing connections while this agent starts: it is listened on only once
    // production serves (below), so clients of a handover see a pause, not a 503. A bound port listens now.
    const proxyOn = listenOn("proxy", config.http.port, config.http.host);
    const listenProxy = () =>
      steps.run(
        "proxy",
        () => proxy.listen(proxyOn),
        () => proxy.close(),
      );
    const proxyPort = "fd" in proxyOn ? config.http.port : await listenProxy();
    const proxyHost = config.http.host === "0.0.0.0" || config.http.host === "::" ? "127.0.0.1" : config.http.host;
    const proxyUrl = `http://${proxyHost}:${proxyPort}`;
    const production = new Production({
      runtime,
      proxy,
      audit,
      log,
      instanceEnv: (database) => instanceEnv(config, roleServer(pg, roles.app), secrets.sessionKey, database),
      productDatabase: config.database.productDatabase,
      healthTimeoutMs: config.instances.healthTimeoutSeconds * 1000,
      servedRelease: async () => catalogue.ref((await journal.productionVersion()) ?? APP_VERSION),
    });
    const backupCtx = backupContextFor({
      config,
      log,
      pg: server,
      opsSequelize: sequelize,
      appendOnly,
      production: async () => {
        const { version } = await production.release();
        return { version, schemaVersion: catalogue.facts(version).schemaVersion };
      },
    });
    const operations = backupOperationsFor(backupCtx, {
      stopProduct: () => production.detach("a restore is in progress"),
      startProduct: () => production.attach(),
    });
    const runJob = async (request: AgentJobRequest, actor: string) => {
      const job = await (await startAuditedJob({ jobs: backupJobs, operations, audit }, request, actor)).audited;
      if (job.status !== "succeeded") throw new Error(`${job.label} failed: ${job.error ?? "see the Backups page"}`);
      return job.result;
    };
    const upgradeHost = agentUpgradeHost({ config, log, audit, pg, roles, runtime, production, releases: catalogue, runJob, doctor: options.doctor });
    const upgrades = new UpgradeManager(upgradeHost, journal);
    const agentUpgrades = new AgentUpgrader({
      home: config.home,
      version: APP_VERSION,
      installed: installedAgentOf(APP_ROOT, APP_VERSION),
      journal,
      audit,
      log,
      releases,
      recheck: (version, current) => catalogue.recheck(version, current),
      snapshot: (tag) => upgradeHost.snapshot(tag),
      production: async () => {
        const version = (await journal.productionVersion()) ?? APP_VERSION;
        return { version, schemaVersion: version === APP_VERSION ? expectedSchemaVersion(PRODUCT_MIGRATIONS_DIR) : catalogue.facts(version).schemaVersion };
      },
      restart: () => restartWithHandover(() => (handover.requested = true), { cancelHandover: () => (handover.requested = false) }),
    });

    await steps.run(
      "production",
      async () => {
        await upgrades.serveAtBoot(APP_VERSION, (version) => production.switchTo(catalogue.ref(version)));
        production.supervise();
      },
      () => production.close(),
    );
    if ("fd" in proxyOn) await listenProxy();
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
    backupMetrics(registry, backupCtx);
    const scheduler = config.backup.scheduler ? new BackupScheduler(scheduledTasks(config.backup, backupCtx.repos, runScheduled), log) : undefined;
    const appliance = () => applianceStatus({ config, pg, runtime, production, urls: { proxy: proxyUrl }, startedAt });
    const consoleApp = createConsoleApp({
      ctx,
      logger: log,
      sessionKey: secrets.sessionKey,
      secureCookies: config.console.cookieSecure,
      trustedProxies: config.console.trustedProxies,
      status: appliance,
      metrics: registry,
      backup: { ctx: backupCtx, jobs: backupJobs, operations, scheduler, signingKey: secrets },
      upgrades: { manager: upgrades, releases, installed: APP_VERSION, agent: agentUpgrades },
    });
    const controlApp = createControlApp(
      controlRouter({
        token: secrets.controlToken,
        jobs: backupJobs,
        operations,
        audit,
        manager: upgrades,
        agentUpgrades,
        releases,
        reload: (actor) => reloadAgentConfig({ config, audit, log }, actor),
        status: statusGatherer({ config, appliance, opsSequelize: sequelize, backup: backupCtx, journal }),
        restart: async (opts) => {
          const outcome = await restartWithHandover(() => (handover.requested = true), { ...opts, cancelHandover: () => (handover.requested = false) });
          await audit.append({ actor: CONTROL_ACTOR, action: "agent.restart", detail: { handover: true, ...outcome } });
          return outcome;
        },
      }),
      log,
    );
    const consoleUrl = await steps.run(
      "console listener",
      () => listenConsole(config, consoleApp),
      ({ server: listener }) => closeConsole(listener),
    );
    const control = await steps.run(
      "control listener",
      () => listenControl(layout.runDir, controlApp),
      ({ server: listener, address }) => closeControl(listener, address),
    );
    writeAgentEndpoint(layout.runDir, {
      pid: process.pid,
      consoleUrl: consoleUrl.url.replace("//0.0.0.0:", "//127.0.0.1:"),
      proxyUrl,
      control: control.address,
    });

    if (scheduler)
      await steps.run(
        "backup schedule",
        () => scheduler.start(),
        () => scheduler.stop(),
      );
    await steps.run(
      "watch",
      () => watch(registry, runtime, startedAt),
      (timer) => clearInterval(timer),
    );

    // What the previous agent handed over is adopted, or was stopped: its record is done with.
    if (handedOver) clearHandover(layout.runDir);
    // Serving: an agent upgrade to this agent ends its trial here (or the rollback to it is recorded).
    const trial = await agentUpgrades.atStart().catch((err) => log.error({ err }, "recording the agent upgrade's outcome failed"));
    if (trial) log.info({ trial }, "agent upgrade");

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
        controlApp,
        urls: { proxy: proxyUrl, console: consoleUrl.url, control: control.address },
        firstAdmin,
      },
      steps,
      stopReason,
      handover,
      startedAt,
    );
  }

  /** Read plum.yaml again and apply what is safe live (config-reload.ts); `plumctl config reload` and SIGHUP. */
  reloadConfig(actor: string): Promise<ReloadOutcome> {
    return reloadAgentConfig(this, actor);
  }

  status(): Promise<ApplianceStatus> {
    return applianceStatus(this);
  }

  /**
   * Stop: the start list backwards (schedule, console, upgrade manager, production, proxy, instances, audit,
   * PostgreSQL, lock). A stop for a handover (asked for before, by `handOverAtStop`) drains the proxy as
   * always, but leaves the instances and PostgreSQL running and records them for the next agent to adopt.
   */
  stop(reason = "stop requested"): Promise<void> {
    this.stopping ??= (async () => {
      const handover = this.handover.requested;
      this.log.info({ reason, handover }, "agent stopping");
      this.stopReason.reason = handover ? `${reason} (handover to the next agent)` : reason;
      await this.steps.stop();
      this.log.info({ handover, instances: this.handover.instances, postgres: this.handover.postgres }, "agent stopped");
    })();
    return this.stopping;
  }
}
