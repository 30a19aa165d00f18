import type { PlumConfig } from "../../lib/config.ts";
import { homeLayout } from "../../lib/paths.ts";
import { agentPidFile } from "../agent-lock.ts";
import { diskFacts } from "./disk-facts.ts";
import type { StatusReport } from "./status-report.ts";
import { statusReport } from "./status-verdict.ts";

const START = "start it: `npm start` from a checkout, or the plum service (systemctl start plum); its log is PLUM_HOME/logs/agent.log";

/**
 * The status when no agent answers: what this host shows without it (the agent's pid file, disk left). The
 * rest (production, proxy, database, backups, upgrades) is the agent's to tell, so it is null. `why`: how the
 * agent failed to answer, when one was found (it then counts as one more reason).
 */
export function statusWithoutAgent(config: PlumConfig, why?: string): StatusReport {
  const pidFile = agentPidFile(homeLayout(config.home).runDir);
  return statusReport({
    checkedAt: new Date().toISOString(),
    agent: {
      running: pidFile.alive,
      answering: false,
      version: null,
      pid: pidFile.pid ?? null,
      startedAt: null,
      pidFile: pidFile.file,
      hint: pidFile.alive ? `the agent (pid ${pidFile.pid}) runs but does not answer: read PLUM_HOME/logs/agent.log, or restart it` : START,
    },
    production: null,
    proxy: null,
    database: null,
    backup: null,
    disk: diskFacts(config),
    upgrade: null,
    unread: why ? [why] : [],
  });
}
