import { Command } from "commander";
import { APP_VERSION } from "../lib/version.ts";
import { describeError } from "../lib/errors.ts";
import { endQuietlyWhenReaderCloses } from "./closed-pipe.ts";
import { groupsFor } from "./command-groups.ts";

endQuietlyWhenReaderCloses(process.stdout);
endQuietlyWhenReaderCloses(process.stderr);

const program = new Command("plumctl").description("Run and operate the Plum appliance").version(APP_VERSION).showHelpAfterError();

try {
  for (const group of groupsFor(process.argv)) (await group.load()).register(program);
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(describeError(err) + "\n");
  process.exitCode = typeof (err as { exitCode?: unknown }).exitCode === "number" ? (err as { exitCode: number }).exitCode : 1;
}
