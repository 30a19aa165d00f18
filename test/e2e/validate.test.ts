import { expect } from "chai";
import pg from "pg";
import { connectionUrl } from "../../lib/db/database.ts";
import { plumctl } from "../support/plumctl.ts";
import { RunningAppliance } from "../support/running-appliance.ts";

interface Report {
  suite: string;
  passed: boolean;
  checks: Array<{ name: string; passed: boolean; detail: string }>;
}

/** `plumctl validate` against a real appliance (agent + instance) filled by `plumctl demo-data`. */
describe("plumctl validate on an appliance with demo data", function () {
  this.timeout(300_000);
  let appliance: RunningAppliance;
  let sql: pg.Client;

  before(async () => {
    appliance = await RunningAppliance.start({ env: { PLUM_HTTP_COOKIE_SECURE: "false" } });
    const demo = await appliance.loadDemoData(500);
    expect(demo.stdout).to.match(/demo data \w+ loaded in [\d.]+ s: 500 participants, 3 programmes/);
    sql = await appliance.product();
  });
  after(() => appliance?.stop());

  const validate = (suites: string[]) =>
    plumctl(
      ["validate", "--url", appliance.agent.proxyUrl, ...suites.flatMap((s) => ["--suite", s])],
      { ...appliance.env, PLUM_VALIDATE_DATABASE_URL: connectionUrl(appliance.dbs.server, appliance.dbs.product) },
      120_000,
    );

  const counts = async () =>
    (
      await sql.query(
        "select (select count(*) from participants) p, (select count(*) from ledger_entries) l, (select count(*) from vouchers) v, (select count(*) from product_users) u, (select count(*) from merchants) m",
      )
    ).rows[0];

  it("passes every suite, prints a JSON report per suite, and leaves no test data behind", async () => {
    const before = await counts();
    const res = await validate([]);
    const reports = JSON.parse(res.stdout) as Report[];
    expect(res.code, res.stderr).to.equal(0);
    expect(reports.map((r) => r.suite)).to.deep.equal(["health", "smoke", "payouts", "catalogue", "redemption", "ledger"]);
    for (const r of reports) {
      expect(r.passed, `${r.suite}: ${JSON.stringify(r.checks.filter((c) => !c.passed))}`).to.equal(true);
      expect(r.checks.length).to.be.greaterThan(0);
    }
    expect(res.stderr).to.match(/^PASS {2}health/m);
    expect(await counts()).to.deep.equal(before);
  });

  it("fails, naming the check, when a ledger entry is tampered with in the database", async () => {
    const { rows } = await sql.query("select id from ledger_entries where kind = 'redemption' order by id limit 1");
    await sql.query("alter table ledger_entries disable trigger ledger_entries_append_only");
    await sql.query("update ledger_entries set points = points + 5 where id = $1", [rows[0].id]);
    await sql.query("alter table ledger_entries enable trigger ledger_entries_append_only");
    const res = await validate(["ledger"]);
    expect(res.code).to.equal(1);
    const [report] = JSON.parse(res.stdout) as Report[];
    expect(report.passed).to.equal(false);
    const failed = report.checks.filter((c) => !c.passed);
    expect(failed.map((c) => c.name)).to.deep.equal(["every redemption entry matches its voucher"]);
    expect(failed[0].detail).to.match(new RegExp(`^1 found: entry ${rows[0].id} took \\d+ points for voucher \\d+ costing \\d+$`));
    expect(res.stderr).to.include("FAIL  ledger").and.include("✗ every redemption entry matches its voucher");
  });

  it("fails, naming the programme and period, when a payout rule is tampered with in the database", async () => {
    const { rows } = await sql.query("select r.programme_id, p.name, r.effective_from from payout_rules r join programmes p on p.id = r.programme_id limit 1");
    expect(rows, "demo data has a payout rule").to.have.length(1);
    await sql.query(`update payout_rules set tiers = jsonb_set(tiers, '{3,rateBp}', '700') where programme_id = $1`, [rows[0].programme_id]);
    const res = await validate(["payouts"]);
    expect(res.code).to.equal(1);
    const [report] = JSON.parse(res.stdout) as Report[];
    const failed = report.checks.filter((c) => !c.passed);
    expect(failed).to.have.length.greaterThan(0);
    expect(failed.map((c) => `${c.name} ${c.detail}`).join("\n"))
      .to.include(rows[0].name)
      .and.include(rows[0].effective_from);
    expect(res.stderr).to.include("FAIL  payouts");
  });

  it("refuses an unknown suite with the list of known ones", async () => {
    const res = await validate(["nope"]);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include("error: unknown suite: nope").and.include("hint: choose from health, smoke");
  });
});
