import type { Logger } from "../lib/logger.ts";
import { sleep, waitFor } from "../lib/wait.ts";
import type { AuditEvent } from "./audit/audit-log.ts";
import type { AnswerListener, EdgeProxy, Upstream } from "./proxy/edge-proxy.ts";
import { instanceId, type HealthReport, type InstanceInfo, type ReleaseRef, type RuntimeDriver, type Slot } from "./runtimes/runtime.ts";

const RESTARTS_ALLOWED = 5; // unexpected exits restarted within RESTART_WINDOW_MS before giving up
const RESTART_WINDOW_MS = 5 * 60_000;
const DRAIN_MS = 30_000;
const FULL_WARM = { connections: 32, rounds: 3, timeoutMs: 5_000 };
const BRIEF_WARM = { connections: 32, rounds: 1, timeoutMs: 1_000 };

export interface ProductionDeps {
  runtime: RuntimeDriver;
  proxy: EdgeProxy;
  audit: { append(event: AuditEvent): Promise<unknown> };
  log: Logger;
  /** The environment of an instance against a database (its URL, the product's key and settings). */
  instanceEnv(database: string): Record<string, string>;
  productDatabase: string;
  healthTimeoutMs: number;
  /** The release that should serve: the upgrade journal's pointer, or the installed release. */
  servedRelease(): Promise<ReleaseRef>;
}

export interface Switched {
  instance: string;
  previous?: string;
  /** How long the switch itself took (the proxy's assignment). */
  switchMs: number;
  switchedAt: Date;
}

export interface ProductionStatus {
  /** The version answering production traffic; undefined while detached or before the first start. */
  version?: string;
  instance?: string;
  healthy: boolean;
  detail: string;
  /** Why the proxy answers 503, while detached. */
  detached?: string;
}

/**
 * What serves production: the one owner of the production slot. It starts a release ready (boot, then health
 * with a deadline and growing sleeps), warms the proxy's connections to it, switches the proxy atomically,
 * drains and stops what served before, detaches production for a restore and attaches it again, and restarts a
 * production instance that died (a bounded number of times, never one a rollback switched away from).
 */
export class Production {
  private readonly restarts: number[] = [];
  private closed = false;
  private detachedFor?: string;

  constructor(private readonly deps: ProductionDeps) {}

  /** The release that serves production, or will again once a restore attaches it (what backup sets are tagged with). */
  release(): Promise<ReleaseRef> {
    return this.deps.servedRelease();
  }

  /** The instance serving production now. */
  current(): Upstream | undefined {
    return this.deps.proxy.current;
  }

  /** Start a release in a slot against a database, wait until it is ready (deadline), stop it again if it never is. */
  async startReady(slot: Slot, release: ReleaseRef, database: string): Promise<InstanceInfo> {
    const { runtime, audit } = this.deps;
    const instance = await runtime.start({ slot, release, env: this.deps.instanceEnv(database) });
    try {
      await waitFor(
        `instance ${instance.id} to become ready`,
        async () => {
          const h = await runtime.health(instance.id);
          if (!h.ready) throw new Error(h.detail);
          return true;
        },
        { timeoutMs: this.deps.healthTimeoutMs, firstDelayMs: 25, maxDelayMs: 250 },
      );
    } catch (err) {
      await runtime.stop(instance.id);
      await audit.append({ actor: "agent", action: "instance.start", target: instance.id, outcome: "failure", detail: { error: (err as Error).message } });
      throw err;
    }
    await audit.append({ actor: "agent", action: "instance.start", target: instance.id, detail: { pid: instance.pid, url: instance.url, database } });
    return instance;
  }

  /** The release's production instance, running and ready: the one already running, or a new one. */
  async ensureWarm(release: ReleaseRef): Promise<InstanceInfo> {
    const { runtime, productDatabase } = this.deps;
    const id = instanceId("production", release.version);
    const running = runtime.list().find((i) => i.id === id);
    // A container a restarted agent adopted keeps serving, unless it was started with another configuration.
    if (running && (runtime.sameEnv?.(id, this.deps.instanceEnv(productDatabase)) ?? true)) return running;
    if (running) await this.stopInstance(id, "started with an earlier configuration");
    return this.startReady("production", release, productDatabase);
  }

  /**
   * Give production to `release`: its instance ready, the proxy's connections to it warmed, the switch (one
   * assignment), then the previous instance drained and, unless `keepPrevious`, stopped. A release that never
   * becomes ready is stopped again: what served before never lost its traffic.
   */
  async switchTo(release: ReleaseRef, opts: { keepPrevious?: boolean; brief?: boolean } = {}): Promise<Switched> {
    const { proxy } = this.deps;
    const instance = await this.ensureWarm(release);
    const upstream = { id: instance.id, version: instance.version, url: instance.url };
    const serving = proxy.current;
    if (serving?.id === upstream.id && serving.url === upstream.url) return { instance: instance.id, switchMs: 0, switchedAt: new Date() };
    await proxy.warm(upstream, opts.brief ? BRIEF_WARM : FULL_WARM);
    const started = process.hrtime.bigint();
    const previous = proxy.switchTo(upstream);
    const switchMs = Number(process.hrtime.bigint() - started) / 1e6;
    const switchedAt = new Date();
    this.detachedFor = undefined;
    await this.deps.audit.append({ actor: "agent", action: "production.switch", target: instance.id, detail: { from: previous?.id ?? null } });
    // A restarted instance has the id of the one that died: there is nothing of it left to drain or stop.
    if (previous && previous.id !== instance.id) {
      await proxy.drain(previous.id, DRAIN_MS).catch(() => undefined);
      if (!opts.keepPrevious) await this.stopInstance(previous.id, "replaced in production");
    }
    return { instance: instance.id, previous: previous?.id, switchMs, switchedAt };
  }

  /** Start the release that should serve and give it production (at boot, after a restore, after a crash). */
  async start(): Promise<InstanceInfo> {
    const release = await this.deps.servedRelease();
    await this.switchTo(release);
    return this.deps.runtime.list().find((i) => i.id === instanceId("production", release.version))!;
  }

  /** Take production traffic off and stop the production instance (for a restore); the proxy answers 503 meanwhile. */
  async detach(reason: string): Promise<void> {
    this.detachedFor = reason;
    const serving = this.deps.proxy.detach(reason);
    if (!serving) return;
    await this.deps.proxy.drain(serving.id, DRAIN_MS).catch(() => undefined);
    await this.stopInstance(serving.id, reason);
  }

  /** Production again after a detach: the release that should serve, started ready and switched to. */
  async attach(): Promise<void> {
    await this.start();
  }

  /** Drain and stop the production instance of a version that no longer serves; nothing when none runs. */
  async stop(version: string): Promise<void> {
    const id = instanceId("production", version);
    if (!this.deps.runtime.list().some((i) => i.id === id)) return;
    await this.deps.proxy.drain(id, DRAIN_MS).catch(() => undefined);
    await this.stopInstance(id, "no longer serves");
  }

  health(version: string): Promise<HealthReport> {
    return this.deps.runtime.health(instanceId("production", version));
  }

  onAnswer(listener: AnswerListener): () => void {
    return this.deps.proxy.onAnswer(listener);
  }

  private async stopInstance(id: string, reason: string): Promise<void> {
    await this.deps.runtime.stop(id);
    await this.deps.audit.append({ actor: "agent", action: "instance.stop", target: id, detail: { reason } }).catch(() => undefined);
  }

  /** Restart a production instance that died while serving, a bounded number of times. */
  supervise(): void {
    this.deps.runtime.onUnexpectedExit((instance, how) => void this.onInstanceDied(instance, how));
  }

  private async onInstanceDied(instance: InstanceInfo, how: string): Promise<void> {
    if (this.closed) return;
    const { log, audit, proxy } = this.deps;
    log.error({ instance: instance.id, how }, "instance exited unexpectedly");
    await audit.append({ actor: "agent", action: "instance.exit", target: instance.id, outcome: "failure", detail: { how } }).catch(() => undefined);
    if (instance.slot !== "production" || proxy.current?.id !== instance.id) return;
    const now = Date.now();
    while (this.restarts.length > 0 && this.restarts[0] < now - RESTART_WINDOW_MS) this.restarts.shift();
    if (this.restarts.length >= RESTARTS_ALLOWED) {
      log.error({ instance: instance.id }, "instance keeps dying; not restarting it again (see its log)");
      return;
    }
    this.restarts.push(now);
    await sleep(500 * 2 ** (this.restarts.length - 1));
    // Meanwhile a rollback may have switched away from this release: never bring it back.
    const stillServes = proxy.current?.id === instance.id && (await this.deps.servedRelease()).version === instance.version;
    if (!this.closed && stillServes) await this.start().catch((err) => log.error({ err }, "restarting the production instance failed"));
  }

  async status(): Promise<ProductionStatus> {
    const serving = this.deps.proxy.current;
    if (!serving) return { healthy: false, detail: this.detachedFor ?? "no instance serves yet", detached: this.detachedFor };
    const h = await this.deps.runtime.health(serving.id);
    return { version: serving.version, instance: serving.id, healthy: h.live && h.ready, detail: h.detail };
  }

  /** The agent is stopping: no more restarts; the instances stop with the runtime. */
  close(): void {
    this.closed = true;
  }
}
