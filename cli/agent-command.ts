import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { describeError } from "../lib/errors.ts";
import { prepareHome } from "../lib/home.ts";
import { createLogger } from "../lib/logger.ts";
import { APP_VERSION } from "../lib/version.ts";
import { Agent } from "../appliance/agent.ts";
import { runChecks } from "../installer/checks/run-checks.ts";
import type { RestartOutcome } from "../appliance/agent-restart.ts";
import { callAgent, controlAddressText, requiredAgentLink } from "../appliance/control/control-client.ts";
import { homeLayout, resolveHome } from "../lib/paths.ts";
import { describeReload } from "./config-reload-format.ts";

function banner(agent: Agent): string {
  const lines = [
    "",
    `  Plum appliance ${APP_VERSION} is running`,
    `    product (edge proxy):  ${agent.urls.proxy}`,
    `    ops console:           ${agent.urls.console}`,
    `    control (plumctl):     ${controlAddressText(agent.urls.control)}`,
    `    database:              ${agent.pg.embedded ? "embedded" : "external"} PostgreSQL ${agent.pg.serverVersion} at ${agent.pg.host}:${agent.pg.port}`,
    `    PLUM_HOME:             ${agent.config.home}`,
  ];
  if (agent.firstAdmin && process.env.PLUM_SERVICE === "1") {
    // A service's output is its journal: a password there would be readable long after. plumctl install prints one.
    lines.push("", "  First start: the ops console's admin has a one-time password; `plumctl user reset-password admin` gives a new one.");
  } else if (agent.firstAdmin) {
    lines.push(
      "",
      "  First start: sign in to the ops console as",
      `    username: ${agent.firstAdmin.username}`,
      `    one-time password: ${agent.firstAdmin.oneTimePassword}`,
      "  It is shown only now and must be changed at first sign-in.",
    );
  }
  lines.push("", "  Stop with Ctrl-C; after editing plum.yaml, `plumctl config reload` (or SIGHUP) applies what it can.", "");
  return lines.join("\n");
}

export function register(program: Command): void {
  program
    .command("agent")
    .description("run the appliance: embedded PostgreSQL (unless external), edge proxy, product instance, ops console")
    .action(async () => {
      const { secrets } = prepareHome();
      const config = loadConfig();
      const log = createLogger("agent", { level: config.log.level, logDir: homeLayout(config.home).logsDir });
      // The checks are installer/'s, above the agent's layer: a failed upgrade's support bundle gets them this way.
      const agent = await Agent.start(config, secrets, log, { doctor: () => runChecks("doctor", { config }) });
      process.stdout.write(banner(agent) + "\n");
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        if (++signals > 1) {
          process.stderr.write(`${signal} again: exiting without a clean stop\n`);
          process.exit(130);
        }
        agent.stop(signal).then(
          () => process.exit(0),
          (err) => {
            process.stderr.write(describeError(err) + "\n");
            process.exit(1);
          },
        );
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      // The service manager's "reload": the same as `plumctl config reload`, answered on the agent's output.
      process.on("SIGHUP", () => {
        agent.reloadConfig("agent").then(
          (outcome) => process.stdout.write(`SIGHUP: ${describeReload(outcome)}`),
          (err) => process.stderr.write(`SIGHUP: ${describeError(err)}\n`),
        );
      });
    });
  program
    .command("agent-restart")
    .description(
      "restart the running agent with a handover: product instances and PostgreSQL keep serving and the next agent adopts them (needs the systemd service; --stop-only: stop so, for another supervisor to start the next)",
    )
    .option("--stop-only", "stop the agent for a handover instead of asking systemd for the restart")
    .action(async (opts: { stopOnly?: boolean }) => {
      const link = requiredAgentLink(resolveHome());
      const outcome = await callAgent<RestartOutcome>(link, "POST", "/agent/restart", { stopOnly: opts.stopOnly === true });
      process.stdout.write(
        outcome.how === "systemd"
          ? `${outcome.unit} restarts: the next agent adopts the running instances (\`plumctl wait-ready\` waits for it)\n`
          : "the agent stops for a handover: start the next one within 3 minutes, or the instances stop on their own\n",
      );
    });
}
