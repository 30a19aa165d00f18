import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { APP_ROOT } from "../../lib/paths.ts";
import { compiledPlumctl } from "./compiled-plumctl.ts";
import { isAlive } from "../../lib/processes.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";

export { isAlive as alive } from "../../lib/processes.ts";

export interface AgentProcess {
  child: ChildProcess;
  home: string;
  proxyUrl: string;
  consoleUrl: string;
  oneTimePassword?: string;
  output(): string;
  /** The agent's own pid (under `npm start` the direct child is npm). */
  agentPid(): number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Send a signal to the whole process group, as a terminal's Ctrl-C does, and wait for the exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A PLUM_HOME in the temp folder, which the embedded PostgreSQL's OS user can enter. */
export function tempHome(): string {
  const home = mkdtempSync(path.join(tmpdir(), "plum-home-"));
  chmodSync(home, 0o755);
  return home;
}

export function removeHome(home: string): void {
  rmSync(home, { recursive: true, force: true });
}

/**
 * Start a real agent (`npm start`, or `plumctl agent`) and wait for its banner. Ports default to 0 (any free
 * port); the banner says which it got.
 */
export async function startAgentProcess(opts: {
  home: string;
  env?: Record<string, string>;
  via?: "npm-start" | "plumctl";
  timeoutMs?: number;
}): Promise<AgentProcess> {
  const env = {
    ...process.env,
    PLUM_HOME: opts.home,
    PLUM_HTTP_HOST: "127.0.0.1",
    PLUM_HTTP_PORT: "0",
    PLUM_CONSOLE_PORT: "0",
    PLUM_CONSOLE_COOKIE_SECURE: "false",
    PLUM_LOG_LEVEL: "info",
    PLUM_BACKUP_SCHEDULER: "false", // tests run backups when they mean to, not when the clock says
    ...opts.env,
  };
  const [cmd, args] = opts.via === "npm-start" ? ["npm", ["start", "--silent"]] : [process.execPath, [await compiledPlumctl(), "agent"]];
  const child = spawn(cmd, args as string[], { cwd: APP_ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  const banner = await waitFor(
    "the agent's banner",
    async () => {
      if (exitedEarly) throw new Error(`agent exited before it was ready:\n${out.slice(-3000)}`);
      const proxy = /product \(edge proxy\):\s+(\S+)/.exec(out)?.[1];
      const consoleUrl = /ops console:\s+(\S+)/.exec(out)?.[1];
      return proxy && consoleUrl ? { proxy, consoleUrl } : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 120_000, maxDelayMs: 250 },
  ).catch((err) => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      /* gone */
    }
    throw new Error(`${(err as Error).message}\n--- agent output ---\n${out.slice(-3000)}`);
  });
  const pidFile = path.join(opts.home, "run", "agent.pid");
  return {
    child,
    home: opts.home,
    proxyUrl: banner.proxy,
    consoleUrl: banner.consoleUrl,
    oneTimePassword: /one-time password:\s+(\S+)/.exec(out)?.[1],
    output: () => out,
    agentPid: () => Number(existsSync(pidFile) ? readFileSync(pidFile, "utf8").trim() : child.pid),
    exited,
    async stop(signal = "SIGINT", timeoutMs = 60_000) {
      const agent = Number(existsSync(pidFile) ? readFileSync(pidFile, "utf8").trim() : 0);
      try {
        process.kill(-child.pid!, signal);
      } catch {
        /* already gone */
      }
      const result = await withDeadline("the agent to exit", timeoutMs, exited);
      // Under `npm start`, npm may exit before the agent has finished its clean stop.
      if (agent > 0) await waitFor(`agent pid ${agent} to exit`, async () => (isAlive(agent) ? undefined : true), { timeoutMs });
      return result;
    },
  };
}
