import net from "node:net";
import { PlumError } from "../../lib/errors.ts";
import { homeLayout } from "../../lib/paths.ts";
import { agentPidFile } from "../../appliance/agent-lock.ts";
import { runningAgent, type AgentEndpoint } from "../../appliance/control/control-client.ts";
import type { PreflightCheck } from "./check.ts";

function free(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

const portOf = (url: string | undefined) => (url ? Number(new URL(url).port) : undefined);

/**
 * The agent of this PLUM_HOME, when one runs: its endpoint file names a live pid and the agent lock is held by
 * that same pid, still an agent (a pid reused after a killed agent is not this appliance holding its ports).
 */
function thisAppliancesAgent(runDir: string): AgentEndpoint | undefined {
  const endpoint = runningAgent(runDir);
  const lock = agentPidFile(runDir);
  return endpoint && lock.alive && lock.pid === endpoint.pid ? endpoint : undefined;
}

export const portsFree: PreflightCheck = {
  id: "ports",
  title: "the edge proxy and console ports are free (or held by this appliance's agent)",
  categories: ["install", "doctor"],
  async run({ config }) {
    // This appliance's running agent holding its own ports is the healthy state, not a conflict.
    const agent = thisAppliancesAgent(homeLayout(config.home).runDir);
    const wanted = [
      { what: "edge proxy (http.port)", port: config.http.port, host: config.http.host, agentPort: portOf(agent?.proxyUrl) },
      { what: "ops console (console.port)", port: config.console.port, host: config.console.host, agentPort: portOf(agent?.consoleUrl) },
    ];
    const taken = [];
    const found = [];
    for (const w of wanted) {
      const address = `${w.host}:${w.port}`;
      if (w.port === 0 || (await free(w.port, w.host))) found.push(address);
      else if (w.agentPort === w.port) found.push(`${address} in use by this appliance's agent (pid ${agent!.pid})`);
      else taken.push(`${w.what} ${address}`);
    }
    if (taken.length > 0)
      throw new PlumError(`in use: ${taken.join(", ")}`, {
        hint: agent
          ? `this appliance's agent (pid ${agent.pid}) listens elsewhere: something else holds these ports; stop it or choose other ports in plum.yaml`
          : "stop what listens there (is the appliance already running?) or choose other ports in plum.yaml",
      });
    return found.join(", ");
  },
};
