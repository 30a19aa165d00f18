import type { PlumConfig } from "../../lib/config.ts";
import { agentLink, callAgent } from "../control/control-client.ts";
import type { StatusReport } from "./status-report.ts";
import { statusWithoutAgent } from "./status-without-agent.ts";

/** The agent gathers its parts within 5 s each; past this it is not answering. */
const AGENT_DEADLINE_MS = 10_000;

/** The running agent's report, or what this host shows without it (no agent, or one that does not answer in time). */
export async function statusOf(config: PlumConfig): Promise<StatusReport> {
  let link;
  try {
    link = agentLink(config.home);
  } catch (err) {
    return statusWithoutAgent(config, (err as Error).message);
  }
  if (!link) return statusWithoutAgent(config);
  try {
    return await callAgent<StatusReport>(link, "GET", "/status", undefined, AGENT_DEADLINE_MS);
  } catch (err) {
    return statusWithoutAgent(config, (err as Error).message);
  }
}
