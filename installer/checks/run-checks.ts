import type { PlumError } from "../../lib/errors.ts";
import type { DoctorResult } from "../../appliance/support/support-bundle.ts";
import type { CheckCategory, CheckContext } from "./check.ts";
import { ALL_CHECKS } from "./index.ts";

/** Run every check of a category, each to its end: one result per check, failures with their hints. */
export async function runChecks(category: CheckCategory, ctx: CheckContext): Promise<DoctorResult[]> {
  const results: DoctorResult[] = [];
  for (const check of ALL_CHECKS.filter((c) => c.categories.includes(category))) {
    try {
      const found = await check.run(ctx);
      results.push({ id: check.id, title: check.title, ok: true, ...(found ? { found } : {}) });
    } catch (err) {
      const e = err as PlumError;
      results.push({ id: check.id, title: check.title, ok: false, error: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    }
  }
  return results;
}
