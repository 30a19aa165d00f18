import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { startChild, type RunningChild } from "../../lib/child-process.ts";
import { PlumError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { commandLineOf, isAlive } from "../../lib/processes.ts";
import { sleep, waitFor } from "../../lib/wait.ts";
import type { AppendOnlyEndpoint, Repository } from "../backup-types.ts";

/** The secret file (0600, under PLUM_HOME/secrets) holding the append-only server's basic-auth user and password. */
export const REST_CREDENTIALS_FILE = "restic-rest-credentials";

const RCLONE_MISSING = "install rclone (Debian: apt-get install rclone), or set backup.appendOnly: false";
const READY = /Serving restic REST API on http:\/\/127\.0\.0\.1:(\d+)\//;
// A supervised server has no natural end: its deadline is the longest a timer allows, after which it is restarted like a crash.
const SERVER_LIFETIME_MS = 2_000_000_000;

export interface RestCredentials {
  user: string;
  password: string;
}

/** The basic-auth credentials of the append-only servers: created once (0600), never replaced, read at each start. */
export function restCredentials(secretsDir: string): RestCredentials {
  const file = path.join(secretsDir, REST_CREDENTIALS_FILE);
  if (!existsSync(file)) {
    mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, `plum-backup:${randomBytes(32).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
  if ((statSync(file).mode & 0o777) !== 0o600) chmodSync(file, 0o600);
  const line = readFileSync(file, "utf8").trim();
  const colon = line.indexOf(":");
  if (colon <= 0 || colon === line.length - 1)
    throw new PlumError(`${file} does not hold "user:password"`, { hint: "delete the file: the agent writes new credentials at its next start" });
  return { user: line.slice(0, colon), password: line.slice(colon + 1) };
}

/** The repository with its append-only endpoint removed: how forget and prune reach it (the agent's own access to the folder). */
export function maintenanceAccess(repo: Repository): Repository {
  const { appendOnly: _served, ...direct } = repo;
  return direct;
}

/** Whether a location is a folder the agent can serve (not a restic URL such as sftp:, rest:, s3:). */
export function isLocalFolder(location: string): boolean {
  return location.startsWith("local:") || !/^[a-z][a-z0-9+]*:/i.test(location);
}

export interface AppendOnlyServerOptions {
  role: Repository["role"];
  /** The repository folder. */
  folder: string;
  secretsDir: string;
  /** Where rclone logs (appended) and its pid file go: PLUM_HOME/run/backup. */
  runDir: string;
  binary?: string;
  log?: Logger;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  /** At most this many restarts within `restartWindowMs`; then the endpoint fails until the agent restarts. */
  maxRestarts?: number;
  restartWindowMs?: number;
}

/**
 * One `rclone serve restic --append-only` over a repository folder, on a random loopback port, run and
 * supervised by the agent. Clients authenticate with HTTP basic auth; the credentials come from a 0600 secret
 * file and reach rclone in its environment (RCLONE_USER, RCLONE_PASS), restic in RESTIC_REPOSITORY: never argv.
 * rclone refuses every deletion but of locks, so a snapshot written through it cannot be forgotten or pruned
 * through it. Started on first use; restarted when it dies (a bounded number of times); stopped by pid.
 */
export class AppendOnlyServer implements AppendOnlyEndpoint {
  private readonly opts: Required<Omit<AppendOnlyServerOptions, "log">> & { log?: Logger };
  private child?: RunningChild;
  private port?: number;
  private starting?: Promise<number>;
  private stopping = false;
  private failed?: PlumError;
  private restarts: number[] = [];

  constructor(opts: AppendOnlyServerOptions) {
    this.opts = { binary: "rclone", startTimeoutMs: 15_000, stopTimeoutMs: 10_000, maxRestarts: 5, restartWindowMs: 10 * 60_000, ...opts };
  }

  get served(): string {
    return `rclone serve restic --append-only on ${this.port ? `127.0.0.1:${this.port}` : "loopback (not started yet)"}`;
  }

  /** The pid of the running rclone, if any. */
  get pid(): number | undefined {
    return this.port ? this.child?.pid : undefined;
  }

  // One log and one pid file per owner (the agent, or a plumctl command beside it): owners never touch each other's server.
  private get logFile(): string {
    return path.join(this.opts.runDir, `rclone-${this.opts.role}.${process.pid}.log`);
  }

  private get pidFile(): string {
    return path.join(this.opts.runDir, `rclone-${this.opts.role}.${process.pid}.pid`);
  }

  async url(): Promise<string> {
    const port = await this.start();
    const { user, password } = restCredentials(this.opts.secretsDir);
    return `rest:http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/`;
  }

  /** Start rclone unless it runs; resolves with its port once it serves. */
  start(): Promise<number> {
    if (this.stopping) return Promise.reject(new PlumError(`the append-only server of the ${this.opts.role} repository is stopping`));
    if (this.failed) return Promise.reject(this.failed);
    if (this.port !== undefined) return Promise.resolve(this.port);
    this.starting ??= this.spawn().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async spawn(): Promise<number> {
    mkdirSync(this.opts.runDir, { recursive: true });
    await this.stopLeftovers();
    const { user, password } = restCredentials(this.opts.secretsDir);
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("RCLONE_")));
    env.RCLONE_USER = user;
    env.RCLONE_PASS = password;
    const logStart = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
    const argv = [this.opts.binary, "serve", "restic", "--append-only", "--addr", "127.0.0.1:0", "--config", "", "--log-file", this.logFile, this.opts.folder];
    const child = startChild(argv, { env, stdin: "ignore", stdout: "ignore", timeoutMs: SERVER_LIFETIME_MS, missingHint: RCLONE_MISSING });
    this.child = child;
    let ended = false;
    const exited = child.exit.then(
      (exit) => {
        ended = true;
        return exit;
      },
      (err: Error) => {
        ended = true;
        throw new PlumError(`cannot run rclone (${this.opts.binary}): ${err.message}`, { hint: RCLONE_MISSING });
      },
    );
    const readLog = async () => ((await readFile(this.logFile).catch(() => Buffer.alloc(0))) as Buffer).subarray(logStart).toString("utf8");
    let port: number;
    try {
      port = await waitFor(
        `rclone to serve the ${this.opts.role} repository append-only`,
        async () => {
          const m = READY.exec(await readLog());
          if (m) return Number(m[1]);
          if (ended) {
            const exit = await exited;
            throw new PlumError(
              `rclone serve restic exited (${exit.exitCode ?? exit.signal}) before serving: ${(await readLog()).trim().split("\n").pop() ?? exit.stderr}`,
            );
          }
          return undefined;
        },
        { timeoutMs: this.opts.startTimeoutMs, maxDelayMs: 200 },
      );
    } catch (err) {
      if (!ended) await this.kill(child, exited);
      if (this.child === child) this.child = undefined;
      throw err instanceof PlumError && err.hint ? err : new PlumError((err as Error).message, { hint: `see ${this.logFile}; ${RCLONE_MISSING}` });
    }
    if (child.pid) writeFileSync(this.pidFile, `${child.pid}\n`);
    this.port = port;
    this.opts.log?.info({ role: this.opts.role, pid: child.pid, port }, "append-only repository server started");
    void exited.then(
      (exit) => this.onExit(child, `exit ${exit.exitCode ?? exit.signal}${exit.timedOut ? " at its lifetime deadline" : ""}`),
      (err: Error) => this.onExit(child, err.message),
    );
    return port;
  }

  /** It died unasked: restart it, at most maxRestarts times in restartWindowMs. */
  private onExit(child: RunningChild, how: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.port = undefined;
    if (this.stopping) return;
    const now = Date.now();
    this.restarts = [...this.restarts.filter((t) => now - t < this.opts.restartWindowMs), now];
    if (this.restarts.length > this.opts.maxRestarts) {
      this.failed = new PlumError(
        `the append-only server of the ${this.opts.role} repository died ${this.restarts.length} times within ${Math.round(this.opts.restartWindowMs / 60_000)} min (last: ${how})`,
        { hint: `see ${this.logFile}; the agent serves it again at its next start` },
      );
      this.opts.log?.error({ role: this.opts.role, how }, this.failed.message);
      return;
    }
    this.opts.log?.warn({ role: this.opts.role, how, restarts: this.restarts.length }, "append-only repository server died: restarting it");
    void sleep(Math.min(200 * 2 ** this.restarts.length, 5000)).then(() =>
      this.stopping || this.port !== undefined || this.starting
        ? undefined
        : this.start().catch((err: Error) => this.opts.log?.error({ role: this.opts.role, err: err.message }, "append-only repository server did not restart")),
    );
  }

  /**
   * Servers left by an owner that was killed (its pid file names a process that is gone, and the rclone it
   * names still runs with that owner's log file on its command line): stopped, by pid, before serving again.
   */
  private async stopLeftovers(): Promise<void> {
    const prefix = `rclone-${this.opts.role}.`;
    for (const name of readdirSync(this.opts.runDir)) {
      const owner = Number(name.slice(prefix.length, -".pid".length));
      if (!name.startsWith(prefix) || !name.endsWith(".pid") || !(owner > 0) || owner === process.pid || isAlive(owner)) continue;
      const file = path.join(this.opts.runDir, name);
      const pid = Number(readFileSync(file, "utf8").trim());
      const cmdline = pid > 0 ? commandLineOf(pid) : "";
      if (cmdline.includes("serve restic --append-only") && cmdline.includes(path.join(this.opts.runDir, `${prefix}${owner}.log`))) {
        this.opts.log?.warn({ role: this.opts.role, pid }, "stopping the append-only server a killed agent left running");
        process.kill(pid, "SIGTERM");
        await waitFor(`the left-over append-only server (pid ${pid}) to stop`, async () => (isAlive(pid) ? undefined : true), {
          timeoutMs: this.opts.stopTimeoutMs,
        }).catch(() => isAlive(pid) && process.kill(pid, "SIGKILL"));
      }
      rmSync(file, { force: true });
    }
  }

  private async kill(child: RunningChild, exited: Promise<unknown>): Promise<void> {
    if (!child.pid) return;
    try {
      process.kill(child.pid, "SIGTERM");
    } catch {
      return;
    }
    const gone = await Promise.race([
      exited.then(
        () => true,
        () => true,
      ),
      sleep(this.opts.stopTimeoutMs).then(() => false),
    ]);
    if (!gone) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
      await Promise.race([exited.catch(() => undefined), sleep(this.opts.stopTimeoutMs)]);
    }
  }

  /** Stop the server (SIGTERM to its pid, SIGKILL after the deadline); it is not restarted. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.starting?.catch(() => undefined);
    const child = this.child;
    if (!child) return;
    await this.kill(child, child.exit);
    this.child = undefined;
    this.port = undefined;
    rmSync(this.pidFile, { force: true });
    rmSync(this.logFile, { force: true });
    this.opts.log?.info({ role: this.opts.role }, "append-only repository server stopped");
  }
}

/** The append-only servers of one agent (or one plumctl command): one per served folder, all stopped together. */
export class AppendOnlyServers {
  private readonly servers = new Map<string, AppendOnlyServer>();

  constructor(private readonly base: Omit<AppendOnlyServerOptions, "role" | "folder">) {}

  /** The repository with its append-only endpoint, when it is a folder; a URL is returned as it is (its own server decides). */
  serve(repo: Repository): Repository {
    if (!isLocalFolder(repo.location)) return repo;
    const folder = path.resolve(repo.location.replace(/^local:/, ""));
    let server = this.servers.get(folder);
    if (!server) {
      server = new AppendOnlyServer({ ...this.base, role: repo.role, folder });
      this.servers.set(folder, server);
    }
    return { ...repo, appendOnly: server };
  }

  list(): AppendOnlyServer[] {
    return [...this.servers.values()];
  }

  async stop(): Promise<void> {
    await Promise.all(this.list().map((s) => s.stop()));
  }
}
