import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { runningAgent } from "../appliance/control/control-client.ts";
import { runChild } from "../lib/child-process.ts";
import { homeLayout } from "../lib/paths.ts";
import { isAlive } from "../lib/processes.ts";
import { waitFor } from "../lib/wait.ts";
import { configFileOf, socketWantsLink, type InstallPaths } from "./install-layout.ts";
import { readInstallRecord } from "./install-record.ts";
import { LIVENESS_SERVICE, LIVENESS_TIMER } from "./liveness.ts";
import { systemctl, systemdBooted, unitActive } from "./service-manager.ts";
import type { Task } from "./tasks.ts";

export interface UninstallOutcome {
  removed: string[];
  kept: string[];
  /** Packages install put on the host, left there (other software may use them). */
  packagesLeft: string[];
}

/** Stop the installed agent: through systemd where it runs, else the agent of /var/lib/plum by its pid (SIGTERM, then a deadline). */
async function stopService(p: InstallPaths): Promise<string> {
  if (systemdBooted()) {
    // The sockets too: a connection to one would start the service again.
    const sockets = Object.values(p.socketUnits);
    const active = [(await unitActive(p.unitName)) ? p.unitName : "", ...(await Promise.all(sockets.map(async (u) => ((await unitActive(u)) ? u : ""))))];
    if (!active.some(Boolean)) return "not running";
    await systemctl(["stop", p.unitName, ...sockets], 5 * 60_000);
    return "stopped";
  }
  const agent = runningAgent(homeLayout(p.home).runDir);
  if (!agent) return "not running";
  process.kill(agent.pid, "SIGTERM");
  // The agent drains the proxy, stops the instances and PostgreSQL: the unit's TimeoutStopSec, as systemd would give it.
  await waitFor(`the agent (pid ${agent.pid}) to stop`, async () => (isAlive(agent.pid) ? undefined : true), { timeoutMs: 150_000, maxDelayMs: 1000 });
  return `stopped the agent (pid ${agent.pid})`;
}

function remove(target: string, out: UninstallOutcome): boolean {
  if (!existsSync(target)) return false;
  rmSync(target, { recursive: true, force: true });
  out.removed.push(target);
  return true;
}

/**
 * Uninstall as a task list. Each step can run again (an interrupted uninstall is finished by running it
 * again); none has an undo: what is removed is the service and the software, and with `purge` the data.
 */
export function uninstallTasks(p: InstallPaths, opts: { purge: boolean }, out: UninstallOutcome): Task[] {
  const record = readInstallRecord(p);
  const tasks: Task[] = [
    { title: "stop the service", run: async () => ({ said: await stopService(p) }) },
    {
      title: `remove the systemd unit ${p.unitFile}`,
      async run() {
        const sockets = Object.values(p.socketUnits);
        if (systemdBooted() && existsSync(p.unitFile)) await systemctl(["disable", p.unitName, ...sockets]);
        const socketFiles = sockets.flatMap((unit) => [socketWantsLink(p, unit), path.join(p.systemdDir, unit)]);
        const any = [p.wantsLink, p.unitFile, ...socketFiles].map((f) => remove(f, out)).some(Boolean);
        if (systemdBooted()) await systemctl(["daemon-reload"]);
        return { said: any ? "removed" : "not there" };
      },
    },
    {
      title: `remove the liveness check ${LIVENESS_TIMER}`,
      async run() {
        const dir = path.dirname(p.unitFile);
        if (systemdBooted() && existsSync(path.join(dir, LIVENESS_TIMER))) await systemctl(["disable", "--now", LIVENESS_TIMER]);
        const any = [
          remove(path.join(dir, "timers.target.wants", LIVENESS_TIMER), out),
          remove(path.join(dir, LIVENESS_TIMER), out),
          remove(path.join(dir, LIVENESS_SERVICE), out),
        ].some(Boolean);
        if (systemdBooted()) await systemctl(["daemon-reload"]);
        return { said: any ? "removed" : "not there" };
      },
    },
    { title: `remove ${p.plumctl}`, run: async () => ({ said: remove(p.plumctl, out) ? "removed" : "not there" }) },
    { title: `remove the releases ${p.optDir}`, run: async () => ({ said: remove(p.optDir, out) ? "removed" : "not there" }) },
  ];
  if (!opts.purge) {
    out.kept.push(configFileOf(p), p.home, p.logDir);
    out.packagesLeft = record.packagesInstalled;
    return tasks;
  }
  return [
    ...tasks,
    {
      title: `remove the data, secrets and backups ${p.home}, the logs ${p.logDir} and the configuration ${p.etcDir}`,
      async run() {
        const any = [remove(p.home, out), remove(p.logDir, out), remove(p.etcDir, out)].some(Boolean);
        return { said: any ? "removed" : "not there" };
      },
    },
    {
      title: "remove the system users install created",
      async run() {
        const gone: string[] = [];
        for (const name of record.usersCreated) {
          const { exitCode } = await runChild(["userdel", name], { timeoutMs: 15_000, okCodes: [0, 6] }); // 6: no such user
          if (exitCode === 0) gone.push(name);
        }
        out.removed.push(...gone.map((u) => `system user ${u}`));
        out.packagesLeft = record.packagesInstalled;
        return { said: gone.length > 0 ? `removed ${gone.join(", ")}` : "none" };
      },
    },
  ];
}

/** What a purge destroys, for the confirmation and for the outcome. */
export function purgeTargets(p: InstallPaths): string[] {
  return [p.home, p.logDir, p.etcDir].filter((t) => existsSync(t)).map((t) => path.resolve(t));
}
