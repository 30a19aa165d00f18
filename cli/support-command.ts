import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { statusOf } from "../appliance/status/status-of.ts";
import { supportBundleWriter } from "../appliance/support/support-bundle.ts";
import { runChecks } from "../installer/checks/run-checks.ts";

export function register(program: Command): void {
  program
    .command("support-bundle")
    .description("write a .tar.gz for the vendor: versions, masked configuration, doctor, log tails, upgrades, backups, audit, metrics")
    .option("--out <file>", "where to write it (default: plum-support-<hostname>-<UTC time>.tar.gz here)")
    .action(async (opts: { out?: string }) => {
      const config = loadConfig();
      const bundle = await supportBundleWriter({ config, out: opts.out, doctor: () => runChecks("doctor", { config }), status: () => statusOf(config) });
      for (const n of bundle.notCollected) process.stdout.write(`not collected: ${n.collector}: ${n.reason}\n`);
      process.stdout.write(`${bundle.masked} secret${bundle.masked === 1 ? "" : "s"} masked (listed by kind and place in redactions.json)\n`);
      process.stdout.write(`${bundle.file}\n`);
    });
}
