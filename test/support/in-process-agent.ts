import { Agent } from "../../appliance/agent.ts";
import { loadConfig, type PlumConfig } from "../../lib/config.ts";
import { prepareHome } from "../../lib/home.ts";
import { createLogger } from "../../lib/logger.ts";
import { runChecks } from "../../installer/checks/run-checks.ts";
import { removeHome, tempHome } from "./agent-process.ts";
import { freshDatabases, type FreshDatabases } from "./databases.ts";

/** A real agent in this process, on fresh (migrated) databases of the test cluster, on free loopback ports. */
export async function startInProcessAgent(
  tune: (config: PlumConfig) => void = () => undefined,
): Promise<{ agent: Agent; dbs: FreshDatabases; stop(): Promise<void> }> {
  const dbs = await freshDatabases({ migrated: true });
  const home = tempHome();
  const env = { PLUM_HOME: home, ...dbs.env, PLUM_HTTP_HOST: "127.0.0.1", PLUM_HTTP_PORT: "0", PLUM_CONSOLE_PORT: "0", PLUM_BACKUP_SCHEDULER: "false" };
  const { secrets } = prepareHome(env);
  const config = loadConfig(env);
  tune(config);
  const log = createLogger("test-agent", { level: process.env.PLUM_TEST_LOG_LEVEL ?? "silent" });
  // As `plumctl agent` starts it: the doctor checks go into the support bundle of an unsuccessful upgrade.
  const agent = await Agent.start(config, secrets, log, { doctor: () => runChecks("doctor", { config }) });
  return {
    agent,
    dbs,
    async stop() {
      await agent.stop("test finished");
      await dbs.drop();
      removeHome(home);
    },
  };
}
