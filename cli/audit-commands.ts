import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { withOpsDatabase } from "../appliance/ops-database.ts";
import { printAnchoredVerdict } from "./chain-verdict.ts";

export function register(program: Command): void {
  const audit = program.command("audit").description("the tamper-evident audit log");
  audit
    .command("verify")
    .description(
      "check the audit log's hash chain and its newest signed checkpoint (PLUM_HOME/anchors); exits 1 naming the first bad row, a rewritten chain or an edited anchor file",
    )
    .option("--json", "print the verdict as JSON")
    .action((opts: { json?: boolean }) =>
      withOpsDatabase(loadConfig(), async (db) => printAnchoredVerdict("audit log", await db.audit.verifyAnchored(), opts.json)),
    );
}
