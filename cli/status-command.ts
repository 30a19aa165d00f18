import type { Command } from "commander";
import { statusOf } from "../appliance/status/status-of.ts";
import { loadConfig } from "../lib/config.ts";
import { APP_VERSION } from "../lib/version.ts";
import { describeStatus } from "./status-format.ts";

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
