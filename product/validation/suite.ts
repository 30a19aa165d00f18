import type { Sequelize } from "sequelize";

/** One check of a validation suite. `detail` says what was measured, so a failure names its cause. */
export interface CheckResult {
  name: string;
  passed: boolean;
  detail: string;
}

/** What `plumctl validate` prints per suite. */
export interface SuiteReport {
  suite: string;
  passed: boolean;
  checks: CheckResult[];
}

/** Where a suite looks: a product instance's base URL and its database. */
export interface SuiteEnv {
  baseUrl: string;
  sequelize: Sequelize;
}

export type Suite = (env: SuiteEnv) => Promise<CheckResult[]>;

export function check(name: string, passed: boolean, detail: string): CheckResult {
  return { name, passed, detail };
}

/** Run a query that lists offending rows; the check passes when there are none and names them when not. */
export async function noRows(env: SuiteEnv, name: string, sql: string, describe: (row: Record<string, unknown>) => string): Promise<CheckResult> {
  const [rows] = await env.sequelize.query(sql);
  const bad = rows as Array<Record<string, unknown>>;
  return check(
    name,
    bad.length === 0,
    bad.length === 0 ? "none found" : `${bad.length} found: ${bad.slice(0, 5).map(describe).join("; ")}${bad.length > 5 ? "; …" : ""}`,
  );
}
