import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { runChecks } from "../installer/checks/run-checks.ts";

export function register(program: Command): void {
  program
    .command("doctor")
    .description("run every preflight check and list each failure with a hint")
    .action(async () => {
      const results = await runChecks("doctor", { config: loadConfig() });
      for (const r of results) {
        if (r.ok) process.stdout.write(`ok    ${r.title}${r.found ? ` — ${r.found}` : ""}\n`);
        else process.stdout.write(`FAIL  ${r.title}: ${r.error}\n${r.hint ? `      hint: ${r.hint}\n` : ""}`);
      }
      const failed = results.filter((r) => !r.ok).length;
      if (failed > 0) throw new PlumError(`${failed} check${failed === 1 ? "" : "s"} failed`);
    });
}
