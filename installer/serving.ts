import { runningAgent, type AgentEndpoint } from "../appliance/control/control-client.ts";
import { PlumError } from "../lib/errors.ts";
import { homeLayout } from "../lib/paths.ts";
import { isAlive } from "../lib/processes.ts";
import { waitFor } from "../lib/wait.ts";

async function answers(url: string, ok: (status: number) => boolean): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000), redirect: "manual" });
    await res.body?.cancel();
    return ok(res.status);
  } catch {
    return false;
  }
}

/**
 * Wait, up to `timeoutMs`, until the agent of `home` runs and serves: the edge proxy answers /readyz from the
 * production instance, and the console answers. Resolves with where they listen; a timeout names what was
 * last missing.
 */
export async function waitUntilServing(home: string, timeoutMs: number, opts: { pid?: number } = {}): Promise<AgentEndpoint & { proxyUrl: string }> {
  const runDir = homeLayout(home).runDir;
  // The agent being waited for has exited: no point in waiting out the deadline (systemd restarts it sooner).
  const gone = () => opts.pid !== undefined && !isAlive(opts.pid);
  const serving = await waitFor(
    "the agent to serve (edge proxy /readyz and the ops console)",
    async () => {
      if (gone()) return "gone" as const;
      const agent = runningAgent(runDir);
      if (!agent) throw new Error(`no running agent has written ${runDir}/agent.json yet`);
      if (!agent.proxyUrl) throw new Error("the agent names no edge proxy");
      if (!(await answers(`${agent.proxyUrl}/readyz`, (s) => s === 200))) throw new Error(`the edge proxy ${agent.proxyUrl}/readyz does not answer 200 yet`);
      if (!(await answers(agent.consoleUrl, (s) => s < 500))) throw new Error(`the ops console ${agent.consoleUrl} does not answer yet`);
      return { ...agent, proxyUrl: agent.proxyUrl };
    },
    { timeoutMs, firstDelayMs: 200, maxDelayMs: 2000 },
  );
  if (serving === "gone") throw new PlumError(`the agent (pid ${opts.pid}) exited before it served`, { hint: "journalctl -u plum -n 50 says why" });
  return serving;
}
