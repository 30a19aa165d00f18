import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { withOpsDatabase } from "../appliance/ops-database.ts";
import { printChainVerdict } from "./chain-verdict.ts";

export function register(program: Command): void {
  const audit = program.command("audit").description("the tamper-evident audit log");
  audit
    .command("verify")
    .description("check the audit log's hash chain; exits 1 and names the first bad row if any row was edited, deleted or reordered")
    .option("--json", "print the verdict as JSON")
    .action((opts: { json?: boolean }) => withOpsDatabase(loadConfig(), async (db) => printChainVerdict("audit log", await db.audit.verify(), opts.json)));
}
