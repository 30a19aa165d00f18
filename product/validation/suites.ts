import { catalogueChecks } from "./catalogue-suite.ts";
import { healthChecks } from "./health-suite.ts";
import { ledgerChecks } from "./ledger-suite.ts";
import { payoutsChecks } from "./payouts-suite.ts";
import { redemptionChecks } from "./redemption-suite.ts";
import { smokeChecks } from "./smoke-suite.ts";
import type { Suite, SuiteEnv, SuiteReport } from "./suite.ts";

/** The suites a release must pass on staging, by name, in the order they run. */
export const SUITES: Record<string, Suite> = {
  health: healthChecks,
  smoke: smokeChecks,
  payouts: payoutsChecks,
  catalogue: catalogueChecks,
  redemption: redemptionChecks,
  ledger: ledgerChecks,
};

/** Run suites one after another; a suite that throws is one failed check naming the error. */
export async function runSuites(names: string[], env: SuiteEnv): Promise<SuiteReport[]> {
  const reports: SuiteReport[] = [];
  for (const suite of names) {
    let checks;
    try {
      checks = await SUITES[suite](env);
    } catch (err) {
      checks = [{ name: "suite ran to the end", passed: false, detail: `it stopped with: ${(err as Error).message}` }];
    }
    reports.push({ suite, passed: checks.every((c) => c.passed), checks });
  }
  return reports;
}
