import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import type Docker from "dockerode";
import { watchEngineEvents, type EngineEvent } from "../../lib/docker/engine.ts";
import { PlumError, TimeoutError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { buildImage, CONTAINER_APP_DIR, CONTAINER_GID, CONTAINER_NODE, CONTAINER_PORT, CONTAINER_UID } from "../releases/container-image.ts";
import {
  instanceId,
  probeHealth,
  type ExecResult,
  type ExitListener,
  type HealthReport,
  type InstanceInfo,
  type InstanceSpec,
  type ReleaseRef,
  type RuntimeDriver,
  type Slot,
} from "./runtime.ts";
import { envDigest } from "./runtime.ts";
export { envDigest };

/** Labels every container of this runtime carries; recover and the event watch touch only containers with ours. */
export const LABEL = {
  appliance: "io.plum.appliance",
  role: "io.plum.role", // instance | command
  instance: "io.plum.instance",
  slot: "io.plum.slot",
  version: "io.plum.version",
} as const;

/** Where instances reach the agent's host (its PostgreSQL): an address on their network, and that network's subnet. */
export interface HostAddress {
  gateway: string;
  subnet: string;
}

export interface DockerRuntimeOptions {
  docker: Docker;
  socketPath: string;
  network: string;
  /** Image of the agent's own release when the agent runs in a container (runtime.docker.selfImage). */
  selfImage?: string;
  /** The agent's own release folder: releases without an image run from it, mounted read-only, on a host. */
  ownReleaseDir: string;
  memoryMb: number;
  cpus: number;
  runDir: string;
  log: Logger;
  stopTimeoutMs: number;
  startTimeoutMs: number;
  /** Identifies this appliance's containers (a digest of its home: labels and names carry no path). */
  applianceId: string;
}

interface Running {
  info: InstanceInfo;
  containerId: string;
  stopping: boolean;
}

/** What run/containers/<id>.json records: which container, and a digest of the environment it was given. */
interface ContainerRecord {
  id: string;
  containerId: string;
  envDigest: string;
}

/** Environment of a container, minus what only the agent's host means (loopback database hosts, rewritten). */
const INHERITED_ENV = ["LANG", "LC_ALL", "TZ", "NODE_EXTRA_CA_CERTS"];
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/** A postgres:// URL whose host is this host's loopback, pointed at `address` (where containers reach it). */
export function containerDatabaseUrl(value: string, address: string): string {
  if (!/^postgres(ql)?:\/\//.test(value)) return value;
  const url = new URL(value);
  if (!LOOPBACK.has(url.hostname)) return value;
  url.hostname = address;
  return url.toString();
}

/** A short, stable name part for an appliance: a digest of its id, never the path itself. */
export function applianceTag(applianceId: string): string {
  return createHash("sha256").update(applianceId).digest("hex").slice(0, 12);
}

export function containerName(tag: string, slot: Slot | "command", version: string, suffix = ""): string {
  return `plum-${tag}-${slot}-${version.replace(/[^A-Za-z0-9_.-]/g, "_")}${suffix}`;
}

/** Docker's healthcheck: the instance's own /healthz, asked by its own node (the image has no curl). */
export const HEALTHCHECK_SCRIPT = `fetch("http://127.0.0.1:${CONTAINER_PORT}/healthz").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`;

/**
 * The hardening every container of this runtime gets: a non-root user, a read-only root filesystem with a
 * small tmpfs /tmp, no capabilities, no privilege gain, memory (no swap beyond it), CPU and process limits,
 * bounded logs, the private network. Pure: tests assert it as it is.
 */
export function hardenedHostConfig(opts: { network: string; memoryMb: number; cpus: number; binds: string[] }): Record<string, unknown> {
  const memory = opts.memoryMb * 1024 * 1024;
  return {
    NetworkMode: opts.network,
    ReadonlyRootfs: true,
    Tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=256m" },
    CapDrop: ["ALL"],
    SecurityOpt: ["no-new-privileges"],
    Memory: memory,
    MemorySwap: memory,
    NanoCpus: Math.round(opts.cpus * 1e9),
    PidsLimit: 512,
    Init: true,
    RestartPolicy: { Name: "no" },
    LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } },
    Binds: opts.binds,
  };
}

/** Split a non-TTY container log stream (8-byte frame headers) into stdout and stderr. */
export function demuxLogs(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const kind = buf[i];
    const size = buf.readUInt32BE(i + 4);
    const payload = buf.subarray(i + 8, i + 8 + size);
    (kind === 2 ? err : out).push(payload);
    i += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

/**
 * Product instances as containers on the host's Docker engine, one per slot and version, on a private bridge
 * network the runtime creates. Releases run from their own image (loaded from the bundle's image.tar); a
 * release without one (the agent's own folder on a host) runs from a runtime image built from the agent's
 * node binary, with its folder mounted read-only. Containers outlive the agent: a restarted agent adopts the
 * ones still running (recover) instead of restarting them.
 */
export class DockerRuntime implements RuntimeDriver {
  readonly kind = "docker";
  private readonly running = new Map<string, Running>();
  private readonly exitListeners: ExitListener[] = [];
  private readonly tag: string;
  private host?: HostAddress;
  private selfContainer?: string;
  private events?: { stop(): void };
  private closed = false;
  private runtimeImage?: Promise<string>;

  constructor(private readonly opts: DockerRuntimeOptions) {
    this.tag = applianceTag(opts.applianceId);
    mkdirSync(this.recordDir, { recursive: true });
  }

  private get docker(): Docker {
    return this.opts.docker;
  }

  private get recordDir(): string {
    return path.join(this.opts.runDir, "containers");
  }

  private recordFile(id: string): string {
    return path.join(this.recordDir, `${id.replace(/[^A-Za-z0-9._-]/g, "_")}.json`);
  }

  /**
   * The engine answers, the network exists (created if missing), and where instances reach the agent's host:
   * the network's gateway, or, when the agent itself runs in a container, its own address on that network
   * (it joins the network if it has not). Call before the database starts: it listens there too.
   */
  async prepare(): Promise<HostAddress> {
    if (this.host) return this.host;
    await withDeadline(`the Docker engine at ${this.opts.socketPath} to answer`, 10_000, this.docker.ping()).catch((err) => {
      throw new PlumError(`the Docker engine at ${this.opts.socketPath} does not answer (runtime.kind: docker): ${(err as Error).message}`, {
        hint: "start it (`systemctl start docker`, or `dockerd &` where systemd does not run), or set runtime.docker.socket; `plumctl doctor` checks it",
      });
    });
    const network = await this.ensureNetwork();
    const self = await this.ownContainer();
    if (self) {
      this.selfContainer = self.id;
      let address: string | undefined = self.networks[this.opts.network];
      if (!address) {
        await this.docker.getNetwork(this.opts.network).connect({ Container: self.id });
        address = (await this.ownContainer())?.networks[this.opts.network];
      }
      if (!address) throw new PlumError(`the agent's container could not join the network ${this.opts.network}`);
      this.host = { gateway: address, subnet: network.subnet };
    } else {
      this.host = network;
    }
    this.watchEvents();
    return this.host;
  }

  private async ensureNetwork(): Promise<HostAddress> {
    const inspect = async () => (await this.docker.getNetwork(this.opts.network).inspect()) as { IPAM: { Config: { Subnet: string; Gateway?: string }[] } };
    let info = await inspect().catch(() => undefined);
    if (!info) {
      await this.docker
        .createNetwork({ Name: this.opts.network, Driver: "bridge", CheckDuplicate: true, Labels: { [LABEL.appliance]: this.tag } })
        .catch(async (err) => {
          if ((await inspect().catch(() => undefined)) === undefined) throw err; // another agent made it meanwhile: fine
        });
      info = await inspect();
      this.opts.log.info({ network: this.opts.network }, "created the product containers' network");
    }
    const config = info.IPAM.Config?.[0];
    if (!config?.Subnet || !config.Gateway) {
      throw new PlumError(`the Docker network ${this.opts.network} has no IPv4 subnet and gateway`, {
        hint: "use a bridge network with an IPv4 subnet (remove it and let the agent create it)",
      });
    }
    return { gateway: config.Gateway, subnet: config.Subnet };
  }

  /** The agent's own container (when it runs in one): its id and addresses by network. */
  private async ownContainer(): Promise<{ id: string; networks: Record<string, string> } | undefined> {
    if (!existsSync("/.dockerenv")) return undefined;
    try {
      const info = await this.docker.getContainer(hostname()).inspect();
      const networks: Record<string, string> = {};
      for (const [name, n] of Object.entries(info.NetworkSettings.Networks ?? {})) if (n.IPAddress) networks[name] = n.IPAddress;
      return { id: info.Id, networks };
    } catch {
      return undefined;
    }
  }

  /** The engine's die/oom events for this appliance's containers: an instance that exits unasked is reported. */
  private watchEvents(): void {
    if (this.closed || this.events) return;
    const filters = { type: ["container"], event: ["die"], label: [`${LABEL.appliance}=${this.tag}`] };
    this.events = watchEngineEvents(
      this.docker,
      filters,
      (event) => this.onEvent(event),
      () => {
        this.events = undefined;
        if (!this.closed) setTimeout(() => this.watchEvents(), 1000).unref();
      },
    );
  }

  private onEvent(event: EngineEvent): void {
    const containerId = event.Actor?.ID ?? event.id ?? "";
    for (const [id, running] of this.running) {
      if (running.containerId !== containerId || running.stopping) continue;
      this.running.delete(id);
      rmSync(this.recordFile(id), { force: true });
      const code = event.Actor?.Attributes?.exitCode;
      const how = code === "137" ? "killed (exit 137: SIGKILL or out of memory)" : `exited with code ${code ?? "?"}`;
      this.opts.log.warn({ instance: id, container: containerId.slice(0, 12), how }, "instance container exited");
      for (const listener of this.exitListeners) listener(running.info, how);
    }
  }

  async dispose(): Promise<void> {
    this.closed = true;
    this.events?.stop();
    this.events = undefined;
  }

  /** Containers of this appliance: running instances are adopted (they kept serving), the rest removed. */
  async recover(): Promise<string[]> {
    await this.prepare();
    const done: string[] = [];
    const containers = await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.appliance}=${this.tag}`] }) });
    for (const c of containers) {
      const labels = c.Labels ?? {};
      const id = labels[LABEL.instance];
      const name = (c.Names?.[0] ?? c.Id).replace(/^\//, "");
      if (labels[LABEL.role] === "instance" && c.State === "running" && id && !this.running.has(id)) {
        const info = await this.infoOf(c.Id, labels[LABEL.slot] as Slot, labels[LABEL.version]);
        if (info) {
          this.running.set(id, { info, containerId: c.Id, stopping: false });
          done.push(`adopted running container ${name} (${id}, ${info.url})`);
          continue;
        }
      }
      await this.docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
      done.push(`removed ${c.State} container ${name}${id ? ` (${id})` : ""}`);
    }
    const kept = new Set([...this.running.keys()].map((id) => this.recordFile(id)));
    for (const file of readdirSync(this.recordDir).map((f) => path.join(this.recordDir, f))) if (!kept.has(file)) rmSync(file, { force: true });
    return done;
  }

  private async infoOf(containerId: string, slot: Slot, version: string): Promise<InstanceInfo | undefined> {
    const info = await this.docker.getContainer(containerId).inspect();
    const address = info.NetworkSettings.Networks?.[this.opts.network]?.IPAddress;
    if (!address) return undefined;
    return {
      id: instanceId(slot, version),
      slot,
      version,
      url: `http://${address}:${CONTAINER_PORT}`,
      pid: info.State.Pid || undefined,
      startedAt: new Date(info.State.StartedAt),
    };
  }

  /** Whether the running instance `id` was given exactly `env` (an adopted one may predate a configuration change). */
  sameEnv(id: string, env: Record<string, string>): boolean {
    try {
      const record = JSON.parse(readFileSync(this.recordFile(id), "utf8")) as ContainerRecord;
      return record.envDigest === envDigest(this.instanceEnv(id, env));
    } catch {
      return false;
    }
  }

  /** The image a release runs from, and what must be mounted for it. */
  private async imageFor(release: ReleaseRef): Promise<{ image: string; binds: string[] }> {
    if (release.image) return { image: release.image, binds: [] };
    if (this.opts.selfImage && path.resolve(release.dir) === path.resolve(this.opts.ownReleaseDir)) return { image: this.opts.selfImage, binds: [] };
    if (this.selfContainer) {
      throw new PlumError(`release ${release.version} has no container image, and the agent runs in a container, where its folders cannot be mounted`, {
        hint: "import a bundle built with images (`npm run bundle -- --images`), or set runtime.docker.selfImage for the agent's own release",
      });
    }
    return { image: await this.ensureRuntimeImage(), binds: this.releaseBinds(release.dir) };
  }

  /**
   * A release folder mounted read-only at /app, and the real folder of each top-level link in it that points
   * outside (a checkout's node_modules may be one) at the path the link names, so the link resolves inside
   * (that path may itself be a link on the host: a worktree's node_modules linked to the main checkout's).
   */
  private releaseBinds(dir: string): string[] {
    const binds = [`${realpathSync(dir)}:${CONTAINER_APP_DIR}:ro`];
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (!lstatSync(full).isSymbolicLink()) continue;
      const named = readlinkSync(full);
      const inside = path.isAbsolute(named) ? named : path.posix.resolve(CONTAINER_APP_DIR, named);
      binds.push(`${realpathSync(full)}:${inside}:ro`);
    }
    return binds;
  }

  /** The runtime image (node and its libraries, nothing else): built once per node binary. */
  private ensureRuntimeImage(): Promise<string> {
    const digest = createHash("sha256").update(process.version).update(realpathSync(process.execPath)).digest("hex").slice(0, 12);
    const tag = `plum-node:${process.versions.node}-${digest}`;
    this.runtimeImage ??= (async () => {
      const exists = await this.docker
        .getImage(tag)
        .inspect()
        .then(() => true)
        .catch(() => false);
      if (exists) return tag;
      const work = mkdtempSync(path.join(this.opts.runDir, "image-"));
      try {
        mkdirSync(path.join(work, "app"));
        this.opts.log.info({ image: tag }, "building the runtime image for releases without their own");
        await buildImage(this.docker, { tag, appDir: path.join(work, "app"), labels: { [LABEL.role]: "runtime" } }, work);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
      return tag;
    })().catch((err) => {
      this.runtimeImage = undefined;
      throw err;
    });
    return this.runtimeImage;
  }

  /** Containers see the host's database where they can reach it; nothing of the agent's environment beyond a few locale keys. */
  private containerEnv(id: string, env: Record<string, string>): Record<string, string> {
    const address = this.host?.gateway ?? "127.0.0.1";
    const out: Record<string, string> = {};
    for (const key of INHERITED_ENV) if (process.env[key]) out[key] = process.env[key]!;
    for (const [k, v] of Object.entries(env)) out[k] = containerDatabaseUrl(v, address);
    out.PLUM_INSTANCE_MARKER = `${this.tag}/${id}`;
    return out;
  }

  /** An instance container's whole environment: what the agent gives it, and where it listens. */
  private instanceEnv(id: string, env: Record<string, string>): Record<string, string> {
    const [slot, version] = id.split("@");
    return this.containerEnv(id, {
      ...env,
      PLUM_INSTANCE_SLOT: slot,
      PLUM_INSTANCE_VERSION: version,
      PLUM_INSTANCE_HOST: "0.0.0.0",
      PLUM_INSTANCE_PORT: String(CONTAINER_PORT),
    });
  }

  private labels(role: "instance" | "command", slot: Slot | "command", version: string, id: string): Record<string, string> {
    return { [LABEL.appliance]: this.tag, [LABEL.role]: role, [LABEL.instance]: id, [LABEL.slot]: slot, [LABEL.version]: version };
  }

  /** Remove a leftover container of ours by name (an exited instance of the same slot and version). */
  private async removeLeftover(name: string): Promise<void> {
    const c = this.docker.getContainer(name);
    const info = await c.inspect().catch(() => undefined);
    if (!info) return;
    if (info.Config.Labels?.[LABEL.appliance] !== this.tag) {
      throw new PlumError(`a container named ${name} exists and is not this appliance's`, { hint: `remove or rename it (docker rm ${name})` });
    }
    await c.remove({ force: true });
  }

  async start(spec: InstanceSpec): Promise<InstanceInfo> {
    await this.prepare();
    const id = instanceId(spec.slot, spec.release.version);
    if (this.running.has(id)) throw new PlumError(`instance ${id} is already running`);
    const { image, binds } = await this.imageFor(spec.release);
    const name = containerName(this.tag, spec.slot, spec.release.version);
    await this.removeLeftover(name);
    const env = this.instanceEnv(id, spec.env);
    const stopSeconds = Math.max(1, Math.round(this.opts.stopTimeoutMs / 1000));
    const container = await this.docker.createContainer({
      name,
      Image: image,
      Entrypoint: [CONTAINER_NODE, `${CONTAINER_APP_DIR}/bin/plumctl.js`],
      Cmd: ["serve"],
      User: `${CONTAINER_UID}:${CONTAINER_GID}`,
      WorkingDir: CONTAINER_APP_DIR,
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Labels: this.labels("instance", spec.slot, spec.release.version, id),
      StopSignal: "SIGTERM",
      StopTimeout: stopSeconds,
      Healthcheck: { Test: ["CMD", CONTAINER_NODE, "-e", HEALTHCHECK_SCRIPT], Interval: 5e9, Timeout: 3e9, Retries: 3, StartPeriod: 30e9 },
      HostConfig: hardenedHostConfig({ network: this.opts.network, memoryMb: this.opts.memoryMb, cpus: this.opts.cpus, binds }),
    } as Docker.ContainerCreateOptions);
    const startedAt = new Date();
    writeFileSync(this.recordFile(id), JSON.stringify({ id, containerId: container.id, envDigest: envDigest(env) } satisfies ContainerRecord), { mode: 0o600 });
    const fail = async (why: string) => {
      const tail = (await this.containerLogs(container.id, 20)).join("\n");
      await container.remove({ force: true }).catch(() => undefined);
      rmSync(this.recordFile(id), { force: true });
      return new PlumError(`instance ${id} did not start: ${why}`, { detail: tail, hint: `its container was ${name}` });
    };
    try {
      await container.start();
    } catch (err) {
      throw await fail((err as Error).message);
    }
    let info: InstanceInfo | undefined;
    try {
      info = await waitFor(
        `instance ${id} to listen`,
        async () => {
          const state = (await container.inspect()).State;
          if (!state.Running) throw new PlumError(`its container exited with code ${state.ExitCode}`);
          const i = await this.infoOf(container.id, spec.slot, spec.release.version);
          if (!i) return undefined;
          const probe = await probeHealth(i.url, 1000);
          return probe.live ? i : undefined;
        },
        { timeoutMs: this.opts.startTimeoutMs, firstDelayMs: 50, maxDelayMs: 250 },
      );
    } catch (err) {
      throw await fail((err as Error).message);
    }
    info.startedAt = startedAt;
    this.running.set(id, { info, containerId: container.id, stopping: false });
    this.opts.log.info({ instance: id, container: container.id.slice(0, 12), url: info.url, image }, "instance started");
    return info;
  }

  async stop(id: string): Promise<void> {
    const running = this.running.get(id);
    if (!running) return;
    running.stopping = true;
    const container = this.docker.getContainer(running.containerId);
    const stopSeconds = Math.max(1, Math.round(this.opts.stopTimeoutMs / 1000));
    // The engine sends SIGTERM, then SIGKILL after stopSeconds; our deadline covers an engine that hangs.
    await withDeadline(`instance ${id} to stop`, this.opts.stopTimeoutMs + 15_000, container.stop({ t: stopSeconds })).catch((err) => {
      if ((err as { statusCode?: number }).statusCode === 304) return; // already stopped
      this.opts.log.warn({ instance: id, err: (err as Error).message }, "instance container did not stop in time; removing it by force");
    });
    await container.remove({ force: true }).catch(() => undefined);
    this.running.delete(id);
    rmSync(this.recordFile(id), { force: true });
    this.opts.log.info({ instance: id }, "instance stopped");
  }

  async health(id: string): Promise<HealthReport> {
    const running = this.running.get(id);
    if (!running) return { live: false, ready: false, detail: "not running", checkedAt: new Date() };
    return probeHealth(running.info.url);
  }

  private async containerLogs(containerId: string, lines: number): Promise<string[]> {
    try {
      const buf = (await this.docker.getContainer(containerId).logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
      const { stdout, stderr } = demuxLogs(buf);
      return (stdout + stderr).trimEnd().split("\n").slice(-lines);
    } catch {
      return [];
    }
  }

  async logs(id: string, lines = 100): Promise<string[]> {
    const running = this.running.get(id);
    if (running) return this.containerLogs(running.containerId, lines);
    const [slot, version] = id.split("@");
    return this.containerLogs(containerName(this.tag, slot as Slot, version), lines);
  }

  list(): InstanceInfo[] {
    return [...this.running.values()].map((r) => r.info);
  }

  onUnexpectedExit(listener: ExitListener): void {
    this.exitListeners.push(listener);
  }

  /** The container's stdout and stderr from its first byte, collected until its stream ends (with a deadline). */
  private async attachOutput(container: Docker.Container): Promise<{ collected(): Promise<{ stdout: string; stderr: string }> }> {
    const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const sink = (into: Buffer[]) => new Writable({ write: (chunk: Buffer, _enc, done) => (into.push(chunk), done()) });
    this.docker.modem.demuxStream(stream, sink(out), sink(err));
    const ended = new Promise<void>((resolve) => {
      stream.once("end", () => resolve());
      stream.once("close", () => resolve());
      stream.once("error", () => resolve());
    });
    return {
      collected: async () => {
        await withDeadline("the command container's output to end", 15_000, ended).catch(() => undefined);
        (stream as unknown as { destroy?: () => void }).destroy?.();
        return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
      },
    };
  }

  /** A release's command as a one-off container with the instances' image and hardening, removed after; killed at the deadline. */
  async exec(release: ReleaseRef, args: string[], opts: { env: Record<string, string>; timeoutMs: number }): Promise<ExecResult> {
    await this.prepare();
    const { image, binds } = await this.imageFor(release);
    const what = `${release.version}'s \`plumctl ${args[0]}\``;
    const id = `command@${release.version}`;
    const name = containerName(this.tag, "command", release.version, `-${args[0]}-${Date.now().toString(36)}`);
    const container = await this.docker.createContainer({
      name,
      Image: image,
      Entrypoint: [CONTAINER_NODE, `${CONTAINER_APP_DIR}/bin/plumctl.js`],
      Cmd: args,
      User: `${CONTAINER_UID}:${CONTAINER_GID}`,
      WorkingDir: CONTAINER_APP_DIR,
      Env: Object.entries(this.containerEnv(id, opts.env)).map(([k, v]) => `${k}=${v}`),
      Labels: this.labels("command", "command", release.version, id),
      HostConfig: hardenedHostConfig({ network: this.opts.network, memoryMb: this.opts.memoryMb, cpus: this.opts.cpus, binds }),
    } as Docker.ContainerCreateOptions);
    const started = Date.now();
    try {
      // Attached before it starts, as `docker run` does: the log driver may not hold the last lines yet when
      // the wait returns, and a command's last line (its JSON verdict) is what the caller reads.
      const output = await this.attachOutput(container);
      // Asked before the start so that a quick exit is not missed: "next-exit", since the default
      // ("not-running") answers at once for a container not started yet (code 0, and no output to read).
      const waited = container.wait({ condition: "next-exit" });
      await container.start();
      let result: { StatusCode: number };
      try {
        result = (await withDeadline(what, opts.timeoutMs, waited)) as { StatusCode: number };
      } catch (err) {
        await container.kill().catch(() => undefined);
        if (err instanceof TimeoutError) {
          throw new PlumError(`${what} did not finish within ${Math.round(opts.timeoutMs / 1000)} s and was killed`, {
            detail: (await this.containerLogs(container.id, 20)).join("\n"),
          });
        }
        throw err;
      }
      const { stdout, stderr } = await output.collected();
      return { code: result.StatusCode, stdout, stderr, seconds: (Date.now() - started) / 1000 };
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }
}
