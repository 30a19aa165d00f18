import { noRows, type CheckResult, type SuiteEnv } from "./suite.ts";

/** Every active item can be bought: it has an enabled merchant, a positive cost and no negative stock. */
export async function catalogueChecks(env: SuiteEnv): Promise<CheckResult[]> {
  return Promise.all([
    noRows(
      env,
      "every active item has an enabled merchant",
      "select i.id, i.name from catalogue_items i left join merchants m on m.id = i.merchant_id where i.active and (m.id is null or m.disabled_at is not null)",
      (r) => `item ${r.id} (${r.name})`,
    ),
    noRows(
      env,
      "every item costs more than 0 points",
      "select id, name, points_cost from catalogue_items where points_cost <= 0",
      (r) => `item ${r.id} costs ${r.points_cost}`,
    ),
    noRows(env, "no item has negative stock", "select id, name, stock from catalogue_items where stock < 0", (r) => `item ${r.id} has stock ${r.stock}`),
  ]);
}
