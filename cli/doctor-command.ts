import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { ALL_CHECKS } from "../installer/checks/index.ts";

export function register(program: Command): void {
  program
    .command("doctor")
    .description("run every preflight check and list each failure with a hint")
    .action(async () => {
      const config = loadConfig();
      let failed = 0;
      for (const check of ALL_CHECKS.filter((c) => c.categories.includes("doctor"))) {
        try {
          const found = await check.run({ config });
          process.stdout.write(`ok    ${check.title}${found ? ` — ${found}` : ""}\n`);
        } catch (err) {
          failed++;
          const e = err as PlumError;
          process.stdout.write(`FAIL  ${check.title}: ${e.message}\n${e.hint ? `      hint: ${e.hint}\n` : ""}`);
        }
      }
      if (failed > 0) throw new PlumError(`${failed} check${failed === 1 ? "" : "s"} failed`);
    });
}
