import { expect } from "chai";
import { prepareHome } from "../../lib/home.ts";
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

  it("tags a set made without an agent with the release the upgrade journal says production runs", async () => {
    prepareHome(env); // the files directory a set backs up
    await opsRows(dbs, "insert into production_release (id, version) values (1, '0.3.0')");
    const res = await plumctl(["backup", "run", "--json"], env, 180_000);
    expect(res.code, res.stderr).to.equal(0);
    const [productSchema] = await opsRows<{ name: string }>(
      { ...dbs, ops: dbs.product },
      "select name from pgmigrations order by run_on desc, id desc limit 1",
    );
    const sets = await opsRows<{ kind: string; status: string; app_version: string; schema_version: string }>(
      dbs,
      "select kind, status, app_version, schema_version from backup_sets",
    );
    // 0.3.0 is no release folder here: the schema is the dumped database's own.
    expect(sets).to.deep.equal([{ kind: "manual", status: "succeeded", app_version: "0.3.0", schema_version: productSchema.name }]);
  });

  it("refuses a malformed set id and an unknown repository the same way", async () => {
    const restore = await plumctl(["restore", "no/such set", "--yes", "--from", "tertiary"], env);
    expect(restore.code).to.equal(1);
    expect(restore.stderr).to.include("the set id no/such set: Invalid string: must match pattern");
    expect(restore.stderr).to.include("--from tertiary is not valid: use one of primary, secondary");
  });
});
