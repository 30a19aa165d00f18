import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { childFailure, startChild } from "../../lib/child-process.ts";
import { PlumError } from "../../lib/errors.ts";
import { commandLineOf, environOf, isAlive, startTimeOf } from "../../lib/processes.ts";
import type { Logger } from "../../lib/logger.ts";
import type { RunAs } from "../../lib/system-user.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { CLAIM_SIGNAL, type AgentMessage, type InstanceMessage } from "../../lib/instance-protocol.ts";
import {
  envDigest,
  instanceId,
  probeHealth,
  type ExecResult,
  type ExitListener,
  type HealthReport,
  type InstanceInfo,
  type InstanceSpec,
  type ReleaseRef,
  type RuntimeDriver,
} from "./runtime.ts";

interface Running {
  info: InstanceInfo;
  /** Our child; undefined for an instance adopted from the agent that handed it over (no IPC channel to it). */
  child?: ChildProcess;
  pid: number;
  logFile: string;
  stopping: boolean;
  exited: Promise<void>;
  /** An adopted instance's exit, as seen by polling (it is not our child). */
  stopWatching?: () => void;
}

/**
 * What a pid file under run/instances records, so a restarted agent can find instances it lost, and adopt the
 * ones handed over to it (url, slot, version, when it started, a digest of its environment).
 */
interface PidRecord {
  id: string;
  pid: number;
  marker: string;
  url?: string;
  slot?: InstanceInfo["slot"];
  version?: string;
  startedAt?: string;
  envDigest?: string;
  /** When the process started (startTimeOf): the proof of identity an agent without CAP_SYS_PTRACE can read. */
  startTime?: string;
}

/** How often an agent that adopted instances claims them again (each takes a handover's grace, minutes). */
const CLAIM_EVERY_MS = 5_000;
const HANDOVER_ACK_MS = 3_000;

const INHERITED_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "NODE_ENV", "NODE_EXTRA_CA_CERTS", "PLUM_LOG_LEVEL"];

function tail(file: string, lines: number): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines);
}

/** Product instances as child processes of the agent: one per slot and version, on private loopback ports. */
export class ProcessRuntime implements RuntimeDriver {
  readonly kind = "process";
  private readonly running = new Map<string, Running>();
  private readonly exitListeners: ExitListener[] = [];
  /** The environment digests of adopted instances (our own children run with the environment we gave them). */
  private readonly adoptedEnv = new Map<string, string>();
  private claimTimer?: NodeJS.Timeout;

  constructor(
    private readonly opts: {
      runDir: string;
      logDir: string;
      log: Logger;
      stopTimeoutMs: number;
      startTimeoutMs: number;
      applianceId: string;
      /**
       * Who instances run as: as root, an unprivileged system user (systemUser), who can
       * read the release folders but not PLUM_HOME's secrets, configuration or backups. Empty: the agent's user.
       */
      runAs?: RunAs;
      /**
       * Who a release's commands (exec) run as: not the instances' user, who could read their environment
       * (the migrations role's password) from /proc. Empty: the agent's user.
       */
      commandsRunAs?: RunAs;
    },
  ) {
    mkdirSync(this.pidDir, { recursive: true });
    mkdirSync(opts.logDir, { recursive: true });
  }

  private get pidDir(): string {
    return path.join(this.opts.runDir, "instances");
  }

  private pidFile(id: string): string {
    return path.join(this.pidDir, `${id.replace(/[^A-Za-z0-9._-]/g, "_")}.json`);
  }

  /** The marker an instance carries in its environment: proves a pid still belongs to this appliance. */
  private marker(id: string): string {
    return `PLUM_INSTANCE_MARKER=${this.opts.applianceId}/${id}`;
  }

  async recover(adopt: string[] = []): Promise<string[]> {
    const done: string[] = [];
    for (const name of readdirSync(this.pidDir)) {
      const file = path.join(this.pidDir, name);
      let record: PidRecord;
      try {
        record = JSON.parse(readFileSync(file, "utf8"));
      } catch {
        rmSync(file, { force: true });
        continue;
      }
      if (!this.stillOurs(record)) {
        rmSync(file, { force: true });
        continue;
      }
      if (adopt.includes(record.id) && (await this.adopt(record))) {
        done.push(`adopted instance ${record.id} (pid ${record.pid}), handed over by the previous agent`);
        continue;
      }
      process.kill(record.pid, "SIGTERM");
      await waitFor(`orphaned instance ${record.id} (pid ${record.pid}) to exit`, async () => (isAlive(record.pid) ? undefined : true), {
        timeoutMs: this.opts.stopTimeoutMs,
      }).catch(() => {
        if (isAlive(record.pid)) process.kill(record.pid, "SIGKILL");
      });
      done.push(`stopped orphaned instance ${record.id} (pid ${record.pid})`);
      rmSync(file, { force: true });
    }
    if (this.running.size > 0) this.claimTimer ??= setInterval(() => this.claimAdopted(), CLAIM_EVERY_MS).unref();
    return done;
  }

  /**
   * Whether the recorded process is still the instance we started: its marker in its environment, or, where the
   * agent may not read another user's environment (the installed service has no CAP_SYS_PTRACE), the same start
   * time and a `serve` command line.
   */
  private stillOurs(record: PidRecord): boolean {
    if (!isAlive(record.pid)) return false;
    if (environOf(record.pid).includes(record.marker)) return true;
    return record.startTime !== undefined && startTimeOf(record.pid) === record.startTime && commandLineOf(record.pid).includes(" serve");
  }

  /** Take over a handed-over instance that is still ours (pid + marker, checked by the caller) and healthy. */
  private async adopt(record: PidRecord): Promise<boolean> {
    if (!record.url || !record.slot || !record.version) return false;
    const health = await probeHealth(record.url);
    if (!health.live) return false;
    const pid = record.pid;
    try {
      process.kill(pid, CLAIM_SIGNAL); // claimed at once: its grace is no longer counting down
    } catch {
      return false;
    }
    const info: InstanceInfo = {
      id: record.id,
      slot: record.slot,
      version: record.version,
      url: record.url,
      pid,
      startedAt: new Date(record.startedAt ?? Date.now()),
    };
    let stopWatching = () => {};
    const exited = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (!isAlive(pid)) {
          clearInterval(timer);
          resolve();
        }
      }, 200);
      stopWatching = () => clearInterval(timer);
    });
    const running: Running = { info, pid, logFile: path.join(this.opts.logDir, `${record.slot}-${record.version}.log`), stopping: false, exited, stopWatching };
    this.running.set(record.id, running);
    this.adoptedEnv.set(record.id, record.envDigest ?? "");
    this.watchExit(record.id, running, () => "exited");
    this.opts.log.info({ instance: record.id, pid, url: record.url }, "instance adopted");
    return true;
  }

  /** Renew the claim on every adopted instance (an adopted instance has no IPC channel to notice this agent's death). */
  private claimAdopted(): void {
    for (const r of this.running.values())
      if (!r.child)
        try {
          process.kill(r.pid, CLAIM_SIGNAL);
        } catch {
          // gone: its exit watch reports it
        }
  }

  /** Whether an adopted instance was started with exactly `env` (it may predate a configuration change); our own are. */
  sameEnv(id: string, env: Record<string, string>): boolean {
    const adopted = this.adoptedEnv.get(id);
    return adopted === undefined || adopted === envDigest(this.instanceEnv(id, env));
  }

  async handOver(graceMs: number): Promise<string[]> {
    const taken: string[] = [];
    for (const [id, running] of [...this.running]) {
      const child = running.child;
      let ok = false;
      if (child?.connected) {
        const ack = new Promise<void>((resolve) => {
          const onMessage = (msg: InstanceMessage) => {
            if (msg?.type === "handover-taken") {
              child.off("message", onMessage);
              resolve();
            }
          };
          child.on("message", onMessage);
        });
        child.send({ type: "handover", graceMs } satisfies AgentMessage);
        // A release older than the handover does not answer: it would stop with this agent, so it is stopped in order.
        ok = await withDeadline(`instance ${id} to take the handover`, HANDOVER_ACK_MS, ack).then(
          () => true,
          () => false,
        );
      } else if (!child) {
        ok = isAlive(running.pid); // adopted before: it waits for a claim already
      }
      if (!ok) {
        await this.stop(id);
        continue;
      }
      running.stopping = true; // its exit is the next agent's business now
      running.stopWatching?.();
      if (child) {
        child.disconnect();
        child.unref();
      }
      this.running.delete(id);
      taken.push(id);
      this.opts.log.info({ instance: id, pid: running.pid, graceMs }, "instance handed over");
    }
    clearInterval(this.claimTimer);
    return taken;
  }

  /** The whole environment of instance `id` given the agent's `env` for it (what sameEnv compares). */
  private instanceEnv(id: string, specEnv: Record<string, string>): Record<string, string> {
    const env: Record<string, string> = {};
    for (const key of INHERITED_ENV) if (process.env[key]) env[key] = process.env[key]!;
    const [slot, version] = id.split("@");
    return Object.assign(env, specEnv, {
      PLUM_INSTANCE_SLOT: slot,
      PLUM_INSTANCE_VERSION: version,
      PLUM_INSTANCE_HOST: "127.0.0.1",
      PLUM_INSTANCE_PORT: "0",
      PLUM_INSTANCE_MARKER: this.marker(id).split("=")[1],
    });
  }

  async start(spec: InstanceSpec): Promise<InstanceInfo> {
    const id = instanceId(spec.slot, spec.release.version);
    if (this.running.has(id)) throw new PlumError(`instance ${id} is already running`);
    const logFile = path.join(this.opts.logDir, `${spec.slot}-${spec.release.version}.log`);
    const logFd = openSync(logFile, "a", 0o640);
    const env = this.instanceEnv(id, spec.env);
    const marker = this.marker(id);
    const [cmd, ...args] = spec.release.command;
    // Own process group: a Ctrl-C at the agent's terminal reaches the agent only, which stops instances in order.
    // The log is opened here, by the agent: the instance's user needs no right on logs/.
    const child = spawn(cmd, [...args, "serve"], {
      cwd: spec.release.dir,
      env,
      stdio: ["ignore", logFd, logFd, "ipc"],
      detached: true,
      uid: this.opts.runAs?.uid,
      gid: this.opts.runAs?.gid,
    });
    closeSync(logFd);
    const startedAt = new Date();
    let exitHow: string | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        exitHow = signal ? `killed by ${signal}` : `exited with code ${code}`;
        resolve();
      });
      // A release whose node cannot be run (EACCES, ENOENT) never starts: an answer, not a crash of the agent.
      child.once("error", (err) => {
        exitHow ??= `could not be started (${err.message})`;
        resolve();
      });
    });
    let port: number | undefined;
    child.on("message", (msg: InstanceMessage) => {
      if (msg?.type === "ready") port = msg.port;
    });
    try {
      await waitFor(
        `instance ${id} to listen`,
        async () => {
          if (exitHow) throw new PlumError(`instance ${id} ${exitHow} before it listened`);
          return port;
        },
        { timeoutMs: this.opts.startTimeoutMs, firstDelayMs: 20, maxDelayMs: 200 },
      );
    } catch (err) {
      if (!exitHow) child.kill("SIGKILL");
      throw new PlumError(`instance ${id} did not start: ${(err as Error).message}`, { detail: tail(logFile, 20).join("\n"), hint: `its log is ${logFile}` });
    }
    const info: InstanceInfo = { id, slot: spec.slot, version: spec.release.version, url: `http://127.0.0.1:${port}`, pid: child.pid, startedAt };
    const running: Running = { info, child, pid: child.pid!, logFile, stopping: false, exited };
    this.running.set(id, running);
    const record: PidRecord = {
      id,
      pid: child.pid!,
      marker,
      url: info.url,
      slot: spec.slot,
      version: spec.release.version,
      startedAt: startedAt.toISOString(),
      envDigest: envDigest(env),
      startTime: startTimeOf(child.pid!),
    };
    writeFileSync(this.pidFile(id), JSON.stringify(record), { mode: 0o600 });
    this.watchExit(id, running, () => exitHow ?? "exited");
    this.opts.log.info({ instance: id, pid: child.pid, url: info.url }, "instance started");
    return info;
  }

  /** Report an exit nobody asked for to the listeners (the production supervisor restarts it). */
  private watchExit(id: string, running: Running, how: () => string): void {
    void running.exited.then(() => {
      if (this.running.get(id) !== running) return;
      this.running.delete(id);
      rmSync(this.pidFile(id), { force: true });
      if (!running.stopping) for (const listener of this.exitListeners) listener(running.info, how());
    });
  }

  private signal(running: Running, signal: NodeJS.Signals): void {
    try {
      if (running.child) running.child.kill(signal);
      else process.kill(running.pid, signal);
    } catch {
      // gone already
    }
  }

  async stop(id: string): Promise<void> {
    const running = this.running.get(id);
    if (!running) return;
    running.stopping = true;
    this.signal(running, "SIGTERM");
    await withDeadline(`instance ${id} to stop`, this.opts.stopTimeoutMs, running.exited).catch(async () => {
      this.opts.log.warn({ instance: id }, "instance did not stop in time; killing it");
      this.signal(running, "SIGKILL");
      await withDeadline(`instance ${id} to die`, 5000, running.exited);
    });
    running.stopWatching?.();
    this.adoptedEnv.delete(id);
    if (running.child?.connected) running.child.disconnect();
    this.running.delete(id);
    rmSync(this.pidFile(id), { force: true });
    this.opts.log.info({ instance: id }, "instance stopped");
  }

  async health(id: string): Promise<HealthReport> {
    const running = this.running.get(id);
    if (!running) return { live: false, ready: false, detail: "not running", checkedAt: new Date() };
    return probeHealth(running.info.url);
  }

  async logs(id: string, lines = 100): Promise<string[]> {
    const running = this.running.get(id);
    const [slot, version] = id.split("@");
    return tail(running?.logFile ?? path.join(this.opts.logDir, `${slot}-${version}.log`), lines);
  }

  list(): InstanceInfo[] {
    return [...this.running.values()].map((r) => r.info);
  }

  onUnexpectedExit(listener: ExitListener): void {
    this.exitListeners.push(listener);
  }

  async exec(release: ReleaseRef, args: string[], opts: { env: Record<string, string>; timeoutMs: number }): Promise<ExecResult> {
    const env: Record<string, string> = {};
    for (const key of INHERITED_ENV) if (process.env[key]) env[key] = process.env[key]!;
    Object.assign(env, opts.env);
    const what = `${release.version}'s \`plumctl ${args[0]}\``;
    const exit = await startChild([...release.command, ...args], {
      cwd: release.dir,
      env,
      timeoutMs: opts.timeoutMs,
      uid: this.opts.commandsRunAs?.uid,
      gid: this.opts.commandsRunAs?.gid,
      missingHint: `is the release folder ${release.dir} complete?`,
    }).exit;
    // A non-zero exit is an answer the caller reads (a failed check, a failed migration); a hang is not.
    if (exit.timedOut) throw childFailure(exit, what, { timeoutMs: opts.timeoutMs });
    return { code: exit.exitCode, stdout: exit.stdout, stderr: exit.stderr, seconds: exit.ms / 1000 };
  }
}
