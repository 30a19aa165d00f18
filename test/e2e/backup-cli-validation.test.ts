import { expect } from "chai";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { opsRows } from "../support/ops-rows.ts";
import { plumctl } from "../support/plumctl.ts";

/** `plumctl backup …` without a running agent validates its request as the control API does, before any work. */
describe("plumctl backup requests without an agent", function () {
  this.timeout(120_000);
  let home: string;
  let dbs: FreshDatabases;
  let env: Record<string, string>;

  before(async () => {
    home = tempHome();
    dbs = await freshDatabases({ migrated: true });
    env = { ...dbs.env, PLUM_HOME: home };
  });
  after(async () => {
    await dbs?.drop();
    removeHome(home);
  });

  const opsCount = async (table: string) => Number((await opsRows<{ n: string }>(dbs, `select count(*) as n from ${table}`))[0].n);

  it("refuses `backup run --kind bogus` with the valid kinds, before reaching the database", async () => {
    const res = await plumctl(["backup", "run", "--kind", "bogus"], env);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.match(/^error: --kind bogus is not valid: use one of manual, scheduled, pre-upgrade$/m);
    expect(res.stderr).not.to.match(/constraint|violates/);
    expect(await opsCount("backup_sets")).to.equal(0);
    expect(await opsCount("audit_log")).to.equal(0);
  });

  it("refuses a malformed set id and an unknown repository the same way", async () => {
    const restore = await plumctl(["restore", "no/such set", "--yes", "--from", "tertiary"], env);
    expect(restore.code).to.equal(1);
    expect(restore.stderr).to.include("the set id no/such set: Invalid string: must match pattern");
    expect(restore.stderr).to.include("--from tertiary is not valid: use one of primary, secondary");
  });
});
