import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { resolveHome } from "../lib/paths.ts";
import { agentLink, callAgent } from "../appliance/control/control-client.ts";
import type { ReloadOutcome } from "../appliance/config-reload.ts";
import { describeReload } from "./config-reload-format.ts";

export function register(program: Command): void {
  const config = program.command("config").description("the appliance's configuration (PLUM_HOME/plum.yaml and PLUM_* variables)");
  config
    .command("check")
    .description("validate the configuration; lists every bad key with how to fix it")
    .action(() => {
      const loaded = loadConfig();
      process.stdout.write(`configuration ok (${loaded.configFile})\n`);
    });
  config
    .command("reload")
    .description("make the running agent read plum.yaml again: applies the keys safe to change live, lists those that need a restart")
    .option("--json", "print what was applied and what needs a restart as JSON")
    .action(async (opts: { json?: boolean }) => {
      // The agent judges the file (with its own environment); an invalid one changes nothing and lists every bad key.
      const link = agentLink(resolveHome());
      if (!link) return void process.stdout.write(`no agent is running: its next start reads ${loadConfig().configFile} (configuration ok)\n`);
      const outcome = await callAgent<ReloadOutcome>(link, "POST", "/config/reload");
      process.stdout.write(opts.json ? JSON.stringify(outcome, null, 2) + "\n" : describeReload(outcome));
    });
}
