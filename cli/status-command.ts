import type { Command } from "commander";
import { agentLink, callAgent } from "../appliance/control/control-client.ts";
import type { StatusReport } from "../appliance/status/status-report.ts";
import { statusWithoutAgent } from "../appliance/status/status-without-agent.ts";
import { loadConfig, type PlumConfig } from "../lib/config.ts";
import { APP_VERSION } from "../lib/version.ts";
import { describeStatus } from "./status-format.ts";

/** The agent gathers its parts within 5 s each; past this it is not answering. */
const AGENT_DEADLINE_MS = 10_000;

/** The running agent's report, or what this host shows without it (no agent, or one that does not answer in time). */
async function statusOf(config: PlumConfig): Promise<StatusReport> {
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

export function register(program: Command): void {
  program
    .command("status")
    .description(
      "one screen about this appliance: versions, health, proxy, database, backups against the RPO, drills, controls, disk, upgrades (exit 1 when degraded)",
    )
    .option("--json", "the same facts as one JSON object")
    .action(async (opts: { json?: boolean }) => {
      const report = await statusOf(loadConfig());
      process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + "\n" : describeStatus(report, APP_VERSION));
      if (report.verdict !== "healthy") process.exitCode = 1;
    });
}
