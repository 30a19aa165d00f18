import { Command } from "commander";
import { registerApplianceCommands, registerUserCommands } from "./appliance-commands.ts";
import { registerBackupCommands } from "./backup-commands.ts";
import { registerInstallerCommands } from "./installer-commands.ts";
import { registerServerCommands } from "./product-commands.ts";
import { registerEvidenceCommands } from "./evidence-commands.ts";
import { registerReleaseCommands } from "./release-commands.ts";
import { registerUpgradeCommands } from "./upgrade-commands.ts";
import { APP_VERSION } from "../lib/version.ts";
import { describeError } from "../lib/errors.ts";

const program = new Command("plumctl").description("Run and operate the Plum appliance").version(APP_VERSION).showHelpAfterError();

// Each area registers its own subcommands.
registerApplianceCommands(program);
registerUserCommands(program);
registerServerCommands(program);
registerBackupCommands(program);
registerInstallerCommands(program);
registerEvidenceCommands(program);
registerReleaseCommands(program);
registerUpgradeCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(describeError(err) + "\n");
  process.exitCode = typeof (err as { exitCode?: unknown }).exitCode === "number" ? (err as { exitCode: number }).exitCode : 1;
}
