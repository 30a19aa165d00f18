import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { childFailure, startChild } from "../../lib/child-process.ts";
import { PlumError } from "../../lib/errors.ts";
import { environOf, isAlive } from "../../lib/processes.ts";
import type { Logger } from "../../lib/logger.ts";
import type { RunAs } from "../../lib/system-user.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import type { InstanceMessage } from "../../lib/instance-protocol.ts";
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
} from "./runtime.ts";

interface Running {
  info: InstanceInfo;
  child: ChildProcess;
  logFile: string;
  stopping: boolean;
  exited: Promise<void>;
}

/** What a pid file under run/instances records, so a restarted agent can find instances it lost. */
interface PidRecord {
  id: string;
  pid: number;
  marker: string;
}

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

  async recover(): Promise<string[]> {
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
      if (isAlive(record.pid) && environOf(record.pid).includes(record.marker)) {
        process.kill(record.pid, "SIGTERM");
        await waitFor(`orphaned instance ${record.id} (pid ${record.pid}) to exit`, async () => (isAlive(record.pid) ? undefined : true), {
          timeoutMs: this.opts.stopTimeoutMs,
        }).catch(() => {
          if (isAlive(record.pid)) process.kill(record.pid, "SIGKILL");
        });
        done.push(`stopped orphaned instance ${record.id} (pid ${record.pid})`);
      }
      rmSync(file, { force: true });
    }
    return done;
  }

  async start(spec: InstanceSpec): Promise<InstanceInfo> {
    const id = instanceId(spec.slot, spec.release.version);
    if (this.running.has(id)) throw new PlumError(`instance ${id} is already running`);
    const logFile = path.join(this.opts.logDir, `${spec.slot}-${spec.release.version}.log`);
    const logFd = openSync(logFile, "a", 0o640);
    const env: Record<string, string> = {};
    for (const key of INHERITED_ENV) if (process.env[key]) env[key] = process.env[key]!;
    const marker = this.marker(id);
    Object.assign(env, spec.env, {
      PLUM_INSTANCE_SLOT: spec.slot,
      PLUM_INSTANCE_VERSION: spec.release.version,
      PLUM_INSTANCE_HOST: "127.0.0.1",
      PLUM_INSTANCE_PORT: "0",
      PLUM_INSTANCE_MARKER: marker.split("=")[1],
    });
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
    const running: Running = { info, child, logFile, stopping: false, exited };
    this.running.set(id, running);
    writeFileSync(this.pidFile(id), JSON.stringify({ id, pid: child.pid!, marker } satisfies PidRecord), { mode: 0o600 });
    void exited.then(() => {
      if (this.running.get(id) !== running) return;
      this.running.delete(id);
      rmSync(this.pidFile(id), { force: true });
      if (!running.stopping) for (const listener of this.exitListeners) listener(info, exitHow ?? "exited");
    });
    this.opts.log.info({ instance: id, pid: child.pid, url: info.url }, "instance started");
    return info;
  }

  async stop(id: string): Promise<void> {
    const running = this.running.get(id);
    if (!running) return;
    running.stopping = true;
    running.child.kill("SIGTERM");
    await withDeadline(`instance ${id} to stop`, this.opts.stopTimeoutMs, running.exited).catch(async () => {
      this.opts.log.warn({ instance: id }, "instance did not stop in time; killing it");
      running.child.kill("SIGKILL");
      await withDeadline(`instance ${id} to die`, 5000, running.exited);
    });
    if (running.child.connected) running.child.disconnect();
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
