import type { CheckCategory, CheckContext, PreflightCheck } from "./check.ts";
import { clock } from "./clock.ts";
import { memory } from "./memory.ts";
import { operatingSystem } from "./operating-system.ts";
import { postgresServer } from "./postgres-server.ts";
import { diskSpace } from "./disk-space.ts";
import { dockerEngine } from "./docker-engine.ts";
import { nodeVersion } from "./node-version.ts";
import { portsFree } from "./ports.ts";
import { postgresClientTools, rcloneTool, resticTool } from "./tools.ts";

export const ALL_CHECKS: PreflightCheck[] = [
  operatingSystem,
  nodeVersion,
  memory,
  diskSpace,
  clock,
  resticTool,
  rcloneTool,
  postgresClientTools,
  postgresServer,
  portsFree,
  dockerEngine,
];

export interface CheckResult {
  id: string;
  title: string;
  ok: boolean;
  /** What it found (ok), or what is wrong (failed). */
  said: string;
  hint?: string;
}

/** Run every check of `category` (all of them, never stopping at the first failure). */
export async function runChecks(category: CheckCategory, ctx: CheckContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const check of ALL_CHECKS.filter((c) => c.categories.includes(category))) {
    try {
      const found = await check.run(ctx);
      results.push({ id: check.id, title: check.title, ok: true, said: found ?? "" });
    } catch (err) {
      const e = err as Error & { hint?: string };
      results.push({ id: check.id, title: check.title, ok: false, said: e.message, ...(e.hint && { hint: e.hint }) });
    }
  }
  return results;
}
