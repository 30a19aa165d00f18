import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  instanceId,
  probeHealth,
  type ExecResult,
  type ExitListener,
  type HealthReport,
  type InstanceInfo,
  type InstanceSpec,
  type RuntimeDriver,
} from "../../appliance/runtimes/runtime.ts";

/**
 * A runtime whose instances are real HTTP servers in this process: /healthz, /readyz (not ready for the
 * versions in `notReady`), and every other path answers the version. Enough for Production and the proxy,
 * without starting product releases; `kill` makes an instance die as a crash would.
 */
export class HttpRuntime implements RuntimeDriver {
  readonly kind = "http-test";
  readonly notReady = new Set<string>();
  readonly started: string[] = [];
  private readonly running = new Map<string, { info: InstanceInfo; server: http.Server }>();
  private readonly listeners: ExitListener[] = [];

  async recover(): Promise<string[]> {
    return [];
  }

  async start(spec: InstanceSpec): Promise<InstanceInfo> {
    const id = instanceId(spec.slot, spec.release.version);
    if (this.running.has(id)) throw new Error(`instance ${id} is already running`);
    const version = spec.release.version;
    const server = http.createServer((req, res) => {
      if (req.url === "/readyz" && this.notReady.has(version)) return void res.writeHead(503).end("schema behind");
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ version, status: "ok" }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const info: InstanceInfo = { id, slot: spec.slot, version, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, startedAt: new Date() };
    this.running.set(id, { info, server });
    this.started.push(id);
    return info;
  }

  private async close(id: string): Promise<InstanceInfo | undefined> {
    const running = this.running.get(id);
    if (!running) return undefined;
    this.running.delete(id);
    running.server.closeAllConnections();
    await new Promise((r) => running.server.close(r));
    return running.info;
  }

  async stop(id: string): Promise<void> {
    await this.close(id);
  }

  /** The instance dies without being asked to. */
  async kill(id: string): Promise<void> {
    const info = await this.close(id);
    if (info) for (const l of this.listeners) l(info, "killed by SIGKILL");
  }

  async health(id: string): Promise<HealthReport> {
    const running = this.running.get(id);
    return running ? probeHealth(running.info.url, 1000) : { live: false, ready: false, detail: "not running", checkedAt: new Date() };
  }

  async logs(): Promise<string[]> {
    return [];
  }

  list(): InstanceInfo[] {
    return [...this.running.values()].map((r) => r.info);
  }

  onUnexpectedExit(listener: ExitListener): void {
    this.listeners.push(listener);
  }

  exec(): Promise<ExecResult> {
    return Promise.reject(new Error("the HTTP test runtime runs no release commands"));
  }
}
