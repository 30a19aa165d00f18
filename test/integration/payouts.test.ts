import { randomBytes } from "node:crypto";
import { expect } from "chai";
import type { Express } from "express";
import request from "supertest";
import { payoutRuleSaver } from "../../product/commands/payout-rule-saver.ts";
import { payoutRunApprover } from "../../product/commands/payout-run-approver.ts";
import { payoutRunComputer } from "../../product/commands/payout-run-computer.ts";
import { payoutSalesImporter, SalesImportRejected } from "../../product/commands/payout-sales-importer.ts";
import { definePayoutModels } from "../../product/models/payout-models.ts";
import type { Programme } from "../../product/models/programme.ts";
import { GOLDEN_TERMS } from "../../product/payouts/golden-cases.ts";
import { storedPayoutLines } from "../../product/payouts/payout-lines.ts";
import { SYSTEM_ACTOR, type ProductContext } from "../../product/product-context.ts";
import { payoutsChecks } from "../../product/validation/payouts-suite.ts";
import { buildAccount, buildMerchant, buildParticipant, buildProgramme, TEST_PASSWORD } from "../support/factories.ts";
import { startProductApp } from "../support/product-app.ts";
import { WebClient } from "../support/web-client.ts";

const HEADER = "employee_id,period,quota,sales";
const QUOTA = 1_000_000n;

describe("payouts: rules, sales import, runs, approval, export", () => {
  let app: Express;
  let ctx: ProductContext;
  let stop: () => Promise<void>;
  before(async () => ({ app, ctx, stop } = await startProductApp()));
  after(() => stop());

  /** A sales-incentive programme with the golden rule from 2025-01, and participants with ordered employee ids. */
  async function setUp(names: string[]): Promise<{ programme: Programme; ids: string[] }> {
    const programme = await buildProgramme(ctx, { kind: "sales_incentive", currency: "EUR" });
    await payoutRuleSaver({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, effectiveFrom: "2025-01", ...GOLDEN_TERMS } });
    const prefix = `S${randomBytes(3).toString("hex")}`;
    const ids = names.map((_, i) => `${prefix}-${String(i + 1).padStart(2, "0")}`);
    for (const [i, name] of names.entries()) await buildParticipant(ctx, { employeeId: ids[i], name });
    return { programme, ids };
  }

  const importSales = (programmeId: number, rows: string[]) =>
    payoutSalesImporter({ ctx, actor: SYSTEM_ACTOR, input: { programmeId, csv: [HEADER, ...rows].join("\n") } });
  const rejection = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: unknown) => e as SalesImportRejected,
    );

  async function managerClient(): Promise<{ web: WebClient; username: string }> {
    const manager = await buildAccount(ctx, "manager");
    const web = new WebClient(app);
    expect((await web.signIn(manager.username, TEST_PASSWORD)).headers.location).to.equal("/manage");
    return { web, username: manager.username };
  }

  function upload(web: WebClient, path: string, token: string, csv: string) {
    // An upload form sends its CSRF token in the action URL: it is checked before the file is read.
    return request(app)
      .post(`${path}?_csrf=${encodeURIComponent(token)}`)
      .set("Cookie", web.cookieHeader())
      .set("Accept", "text/html")
      .attach("file", Buffer.from(csv), "sales.csv")
      .redirects(0);
  }

  it("pays the golden amounts at every tier edge, above quota with the accelerator and at the cap", async () => {
    // [sales, attainment bp, amount] for a quota of 10,000.00: 0 / 2 % from 50 % / 4 % from 80 % / 6 % from 100 %, 1.5× above quota, cap 1,500.00.
    const cases: Array<[bigint, bigint, bigint]> = [
      [499_999n, 4_999n, 0n], // one minor unit below 50 %
      [500_000n, 5_000n, 10_000n], // exactly 50 %
      [500_025n, 5_000n, 10_000n], // 10,000.5 rounds half down
      [799_999n, 7_999n, 16_000n], // one minor unit below 80 %: 15,999.98
      [800_000n, 8_000n, 32_000n], // exactly 80 %
      [999_999n, 9_999n, 40_000n], // one minor unit below quota: 39,999.96
      [1_000_000n, 10_000n, 60_000n], // exactly quota
      [1_500_000n, 15_000n, 105_000n], // 6 % of 10,000.00 + 9 % of 5,000.00
      [1_999_989n, 19_999n, 149_999n], // one minor unit below the cap
      [2_000_000n, 20_000n, 150_000n], // exactly the cap
      [2_000_012n, 20_000n, 150_000n], // over the cap
    ];
    const { programme, ids } = await setUp(cases.map((_, i) => `Seller ${i + 1}`));
    expect(
      await importSales(
        programme.id,
        cases.map(([sales], i) => `${ids[i]},2025-03,${QUOTA},${sales}`),
      ),
    ).to.deep.equal({ created: cases.length, updated: 0, periods: ["2025-03"] });
    const run = await payoutRunComputer({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, period: "2025-03" } });
    const stored = await storedPayoutLines(ctx.sequelize, run.id);
    expect(stored.map((l) => [l.employeeId, l.attainmentBp, l.amountMinor])).to.deep.equal(cases.map(([, bp, amount], i) => [ids[i], bp, amount]));
    const { Payout } = definePayoutModels(ctx.sequelize);
    const capped = await Payout.findOne({ where: { runId: run.id, participantId: stored.at(-1)!.participantId } });
    expect(capped!.detail).to.include({ uncappedMinor: "150001", capMinor: "150000", capped: true, acceleratedSalesMinor: "1000012", rounding: "half-down" });
  });

  it("imports nothing from a sales file with bad rows, and names each row, column and reason", async () => {
    const { programme, ids } = await setUp(["Ana"]);
    const format = await rejection(
      importSales(programme.id, [
        `${ids[0]},2025-03,100000,50000`,
        `${ids[0]},2025-13,100000,50000`,
        `${ids[0]},2025-04,0,1`,
        `${ids[0]},2025-05,100000,12.50`,
        `,2025-06,100000,-5`,
        `${ids[0]},2025-03,100000,1`,
      ]),
    );
    expect(format).to.be.instanceOf(SalesImportRejected);
    expect(format!.errors).to.deep.equal([
      { line: 3, column: "period", reason: '"2025-13" is not a month written YYYY-MM' },
      { line: 4, column: "quota", reason: '"0" is not a whole number of minor units from 1 to 1000000000000 (write 1250.00 EUR as 125000)' },
      { line: 5, column: "sales", reason: '"12.50" is not a whole number of minor units from 0 to 1000000000000 (write 1250.00 EUR as 125000)' },
      { line: 6, column: "employee_id", reason: "is empty" },
      { line: 6, column: "sales", reason: '"-5" is not a whole number of minor units from 0 to 1000000000000 (write 1250.00 EUR as 125000)' },
      { line: 7, column: "(row)", reason: `${ids[0]} in 2025-03 is also on line 2` },
    ]);
    expect(format!.message).to.equal("Nothing was imported: 6 problems in the file. Fix them and import the whole file again.");

    const unknown = await rejection(importSales(programme.id, [`${ids[0]},2025-03,100000,50000`, "NOBODY-1,2025-03,100000,50000"]));
    expect(unknown!.errors).to.deep.equal([{ line: 3, column: "employee_id", reason: 'no participant has the employee id "NOBODY-1": import them first' }]);
    const missing = await rejection(
      payoutSalesImporter({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, csv: "employee_id,period,sales\nX,2025-01,1\n" } }),
    );
    expect(missing!.errors).to.deep.equal([{ line: 1, column: "quota", reason: 'missing column "quota" (expected: employee_id, period, quota, sales)' }]);
    const { SalesRecord } = definePayoutModels(ctx.sequelize);
    expect(await SalesRecord.count({ where: { programmeId: programme.id } })).to.equal(0);

    const { web } = await managerClient();
    const page = `/manage/payouts/programmes/${programme.id}`;
    const res = await upload(web, `${page}/sales`, await web.csrfFrom(page), `${HEADER}\n${ids[0]},2025-03,100000,50000\nNOBODY-2,2025-03,1,1\n`);
    expect(res.status).to.equal(400);
    expect(res.text).to.include("Nothing was imported: 1 problem in the file. Fix it and import the whole file again.");
    expect(res.text).to.include("<td>3</td><td>employee_id</td><td>no participant has the employee id &quot;NOBODY-2&quot;: import them first</td>");
    expect(res.text, "the rule form still shows the saved rule").to.include('<input name="cap" value="1500.00" inputmode="decimal" required>');
    expect((await web.get(`/manage/payouts/programmes/${(await buildProgramme(ctx, { kind: "recognition" })).id}`)).status).to.equal(404);
    expect(await SalesRecord.count({ where: { programmeId: programme.id } })).to.equal(0);
  });

  it("updates a participant's figures for a period on re-import", async () => {
    const { programme, ids } = await setUp(["Ana", "Ben"]);
    expect(await importSales(programme.id, [`${ids[0]},2025-03,100000,50000`])).to.deep.equal({ created: 1, updated: 0, periods: ["2025-03"] });
    expect(await importSales(programme.id, [`${ids[0]},2025-03,100000,90000`, `${ids[1]},2025-03,100000,10000`])).to.deep.equal({
      created: 1,
      updated: 1,
      periods: ["2025-03"],
    });
    const { SalesRecord } = definePayoutModels(ctx.sequelize);
    const rows = await SalesRecord.findAll({ where: { programmeId: programme.id }, order: [["salesMinor", "DESC"]] });
    expect(rows.map((r) => [r.quotaMinor, r.salesMinor])).to.deep.equal([
      ["100000", "90000"],
      ["100000", "10000"],
    ]);
  });

  it("computes, approves and exports through the pages, with the exact payroll CSV", async () => {
    const programme = await buildProgramme(ctx, { kind: "sales_incentive", currency: "EUR", name: `Q1 Sales Push ${randomBytes(2).toString("hex")}` });
    const prefix = `W${randomBytes(3).toString("hex")}`;
    await buildParticipant(ctx, { employeeId: `${prefix}-1`, name: "Ana Costa" });
    await buildParticipant(ctx, { employeeId: `${prefix}-2`, name: 'Ben "The Closer" Weber' });
    await buildParticipant(ctx, { employeeId: `${prefix}-3`, name: "Moreau, Chloé" });
    await buildParticipant(ctx, { employeeId: `${prefix}-4`, name: '=HYPERLINK("http://x")' });
    const { web, username } = await managerClient();

    const list = await web.get("/manage/payouts");
    expect(list.status).to.equal(200);
    expect(list.text).to.include(`<a href="/manage/payouts/programmes/${programme.id}"><strong>${programme.name}</strong></a>`);

    const page = `/manage/payouts/programmes/${programme.id}`;
    const token = await web.csrfFrom(page);
    const badRule = await web.post(
      `${page}/rules`,
      { effectiveFrom: "2025-01", from0: "50", rate0: "2", from1: "40", rate1: "4", accelerator: "0.5", cap: "0" },
      token,
    );
    expect(badRule.status).to.equal(400);
    expect(badRule.text).to.include("The payout rule was not saved.");
    expect(badRule.text).to.include("<strong>tiers</strong> tier 2: thresholds must be strictly ascending (40.00 % follows 50.00 %)");
    expect(badRule.text).to.include("<strong>accelerator</strong> must be from 1× to 10× (10000 to 100000 bp; got 5000)");
    expect(badRule.text).to.include("<strong>cap</strong> must be more than 0");

    const rule = {
      effectiveFrom: "2025-01",
      from0: "0",
      rate0: "0",
      from1: "50",
      rate1: "2",
      from2: "80",
      rate2: "4",
      from3: "100",
      rate3: "6",
      accelerator: "1.5",
      cap: "1500.00",
    };
    const saved = await web.post(`${page}/rules`, rule, token);
    expect([saved.status, saved.headers.location]).to.deep.equal([303, `${page}?notice=rule-saved`]);
    const { PayoutRule, PayoutRun } = definePayoutModels(ctx.sequelize);
    const stored = await PayoutRule.findOne({ where: { programmeId: programme.id } });
    expect({ tiers: stored!.tiers, acceleratorBp: stored!.acceleratorBp, capMinor: BigInt(stored!.capMinor) }).to.deep.equal(GOLDEN_TERMS);

    const sales = await upload(
      web,
      `${page}/sales`,
      token,
      `${HEADER}\n${prefix}-1,2025-03,1000000,1500000\n${prefix}-2,2025-03,1000000,799999\n${prefix}-3,2025-03,1000000,2000012\n${prefix}-4,2025-03,1000000,499999\n`,
    );
    expect([sales.status, sales.headers.location]).to.deep.equal([303, `${page}?notice=sales-imported&created=4&updated=0`]);

    const computed = await web.post(`${page}/runs`, { period: "2025-03" }, token);
    expect(computed.status).to.equal(303);
    const runPath = computed.headers.location.replace(/\?.*$/, "");
    expect(runPath).to.match(/^\/manage\/payouts\/runs\/\d+$/);
    const review = await web.get(runPath);
    expect(review.status).to.equal(200);
    expect(review.text).to.include("<td>150.00 %</td><td>1050.00</td>");
    expect(review.text).to.include(
      "tier 4 (from 100.00 %): 6.00 % of 10000.00 EUR + 6.00 % × 1.5 of 10000.12 EUR above quota makes 1500.01 EUR (rounded half down), capped at 1500.00 EUR",
    );
    expect(review.text).to.include("<th>2710.00</th>");

    const early = await web.post(`${runPath}/export`, {}, token);
    expect(early.status).to.equal(409);
    expect(early.text).to.include(`The payouts of &quot;${programme.name}&quot; for 2025-03 are not approved yet: approve them before exporting.`);

    const approved = await web.post(`${runPath}/approve`, {}, token);
    expect([approved.status, approved.headers.location]).to.deep.equal([303, `${runPath}?notice=approved`]);
    const run = await PayoutRun.findByPk(Number(runPath.split("/").at(-1)));
    expect([run!.status, run!.approvedBy]).to.deep.equal(["approved", `user:${username}`]);

    const exported = await web.post(`${runPath}/export`, {}, token);
    expect(exported.status).to.equal(200);
    expect(exported.headers["content-type"]).to.equal("text/csv; charset=utf-8");
    expect(exported.headers["content-disposition"]).to.equal(`attachment; filename=payouts-${programme.name.toLowerCase().replace(/ /g, "-")}-2025-03.csv`);
    expect(exported.text).to.equal(
      [
        "employee_id,name,period,attainment_percent,amount,currency",
        `${prefix}-1,Ana Costa,2025-03,150.00,1050.00,EUR`,
        `${prefix}-2,"Ben ""The Closer"" Weber",2025-03,79.99,160.00,EUR`,
        `${prefix}-3,"Moreau, Chloé",2025-03,200.00,1500.00,EUR`,
        `${prefix}-4,"'=HYPERLINK(""http://x"")",2025-03,49.99,0.00,EUR`,
        "",
      ].join("\r\n"),
    );
    await run!.reload();
    expect(run!.status).to.equal("exported");
    expect((await web.post(`${runPath}/export`, {}, token)).text).to.equal(exported.text);

    const events = await ctx.models.ProductEvent.findAll({ where: { actor: `user:${username}` }, order: [["id", "ASC"]] });
    expect(events.map((e) => e.action).filter((a) => a.startsWith("payout."))).to.deep.equal([
      "payout.rule.save",
      "payout.sales.import",
      "payout.run.compute",
      "payout.run.approve",
      "payout.run.export",
      "payout.run.export",
    ]);
  });

  it("freezes an approved run: recomputing is a 409 that says why, and its sales and rule cannot change", async () => {
    const { programme, ids } = await setUp(["Ana"]);
    await importSales(programme.id, [`${ids[0]},2025-03,100000,100000`]);
    const run = await payoutRunComputer({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, period: "2025-03" } });
    const again = await payoutRunComputer({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, period: "2025-03" } });
    expect(again.id).to.equal(run.id);
    const { web, username } = await managerClient();
    const runPath = `/manage/payouts/runs/${run.id}`;
    const token = await web.csrfFrom(runPath);
    expect((await web.post(`${runPath}/approve`, {}, token)).status).to.equal(303);
    const day = new Date().toISOString().slice(0, 10);
    const message = `The payouts of &quot;${programme.name}&quot; for 2025-03 were approved by user:${username} on ${day} and are frozen: they cannot be recomputed.`;

    const recompute = await web.post(`${runPath}/recompute`, {}, token);
    expect(recompute.status).to.equal(409);
    expect(recompute.text).to.include(message);
    const compute = await web.post(`/manage/payouts/programmes/${programme.id}/runs`, { period: "2025-03" }, token);
    expect(compute.status).to.equal(409);
    expect(compute.text).to.include(message);
    const twice = await web.post(`${runPath}/approve`, {}, token);
    expect(twice.status).to.equal(409);
    expect(twice.text).to.include("and are frozen: they cannot be approved again.");

    const sales = await rejection(importSales(programme.id, [`${ids[0]},2025-03,100000,1`, `${ids[0]},2025-04,100000,1`]));
    expect(sales!.errors).to.deep.equal([{ line: 2, column: "period", reason: "the payouts of 2025-03 are approved: its sales are frozen" }]);
    const rule = await payoutRuleSaver({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, effectiveFrom: "2025-03", ...GOLDEN_TERMS } }).catch(
      (e: { fields: Record<string, string> }) => e.fields,
    );
    expect(rule).to.deep.equal({
      effectiveFrom: "the payouts of 2025-03 are approved and frozen, with the rule they were computed with: a new rule can take effect after 2025-03",
    });
    await payoutRuleSaver({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, effectiveFrom: "2025-04", ...GOLDEN_TERMS, capMinor: 1n } });

    const database = await ctx.sequelize.query("update payouts set amount_minor = 1 where run_id = :id", { replacements: { id: run.id } }).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(database).to.equal(`payout run ${run.id} is approved: its payouts are frozen (UPDATE refused)`);
  });

  it("refuses to approve payouts whose sales changed after they were computed", async () => {
    const { programme, ids } = await setUp(["Ana"]);
    await importSales(programme.id, [`${ids[0]},2025-03,100000,100000`]);
    const run = await payoutRunComputer({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, period: "2025-03" } });
    await importSales(programme.id, [`${ids[0]},2025-03,100000,80000`]);
    const refused = await payoutRunApprover({ ctx, actor: SYSTEM_ACTOR, input: { runId: run.id } }).then(
      () => undefined,
      (e: { status: number; message: string }) => [e.status, e.message],
    );
    expect(refused).to.deep.equal([
      409,
      `The sales or the payout rule of 2025-03 changed after these payouts were computed (${ids[0]}: stored 6000 at 10000 bp, recomputed 3200 at 8000 bp): recompute, review, then approve.`,
    ]);
    await payoutRunComputer({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, period: "2025-03" } });
    expect((await payoutRunApprover({ ctx, actor: SYSTEM_ACTOR, input: { runId: run.id } })).status).to.equal("approved");
  });

  it("refuses participants and merchant staff (403) on every payout page and action", async () => {
    const { programme } = await setUp([]);
    const participant = await buildParticipant(ctx);
    const merchant = await buildMerchant(ctx);
    const accounts = [
      { role: "participant", ...(await buildAccount(ctx, "participant", { participantId: participant.id })) },
      { role: "merchant", ...(await buildAccount(ctx, "merchant", { merchantId: merchant.merchant.id })) },
    ];
    for (const account of accounts) {
      const web = new WebClient(app);
      await web.signIn(account.username, TEST_PASSWORD);
      const token = await web.csrfFrom("/account/password");
      for (const path of ["/manage/payouts", `/manage/payouts/programmes/${programme.id}`]) {
        const res = await web.get(path);
        expect(res.status, `${account.role} GET ${path}`).to.equal(403);
        expect(res.text).to.include(`Your role (${account.role}) may not view payouts.`);
      }
      const posts: Array<[string, Record<string, string>, string]> = [
        [
          `/manage/payouts/programmes/${programme.id}/rules`,
          { effectiveFrom: "2025-01", from0: "0", rate0: "50", accelerator: "1", cap: "100000" },
          "change payouts",
        ],
        [`/manage/payouts/programmes/${programme.id}/runs`, { period: "2025-03" }, "create payouts"],
        ["/manage/payouts/runs/1/approve", {}, "approve payouts"],
        ["/manage/payouts/runs/1/export", {}, "export payouts"],
      ];
      for (const [path, form, verb] of posts) {
        const res = await web.post(path, form, token);
        expect(res.status, `${account.role} POST ${path}`).to.equal(403);
        expect(res.text).to.include(`Your role (${account.role}) may not ${verb}.`);
      }
    }
  });

  it("validation suite: passes on approved runs, names the programme and period of a tampered rule, and leaves nothing behind", async () => {
    const { programme, ids } = await setUp(["Ana", "Ben"]);
    await importSales(programme.id, [`${ids[0]},2025-03,1000000,1500000`, `${ids[1]},2025-03,1000000,800000`]);
    const run = await payoutRunComputer({ ctx, actor: SYSTEM_ACTOR, input: { programmeId: programme.id, period: "2025-03" } });
    await payoutRunApprover({ ctx, actor: SYSTEM_ACTOR, input: { runId: run.id } });
    const env = { baseUrl: "http://127.0.0.1:9", sequelize: ctx.sequelize };
    const counts = () =>
      ctx.sequelize
        .query(
          "select (select count(*) from payout_rules) r, (select count(*) from sales_records) s, (select count(*) from payout_runs) u, (select count(*) from payouts) p, (select count(*) from product_events) e",
        )
        .then(([rows]) => rows[0]);
    const before = await counts();

    const healthy = await payoutsChecks(env);
    expect(healthy.map((c) => [c.name, c.passed])).to.deep.equal([
      ["payout calculator reproduces the golden cases", true],
      ["stored payout rules are valid", true],
      ["approved payout runs reproduce from their sales and rule", true],
    ]);
    expect(healthy[0].detail).to.equal("14 cases reproduced: tier edges, accelerator, cap, half-down rounding");

    // Tampering as someone with database access would: a lower top rate, then tiers out of order.
    await ctx.sequelize.query(`update payout_rules set tiers = jsonb_set(tiers, '{3,rateBp}', '500') where programme_id = ${programme.id}`);
    const lowered = await payoutsChecks(env);
    expect(lowered[1].passed).to.equal(true);
    expect(lowered[2]).to.deep.equal({
      name: "approved payout runs reproduce from their sales and rule",
      passed: false,
      detail: `"${programme.name}" 2025-03: 1 payout differs (${ids[0]}: stored 105000 at 15000 bp, recomputed 87500 at 15000 bp)`,
    });

    await ctx.sequelize.query(
      `update payout_rules set tiers = '[{"fromAttainmentBp":8000,"rateBp":400},{"fromAttainmentBp":5000,"rateBp":200}]' where programme_id = ${programme.id}`,
    );
    const disordered = await payoutsChecks(env);
    expect(disordered[1]).to.deep.equal({
      name: "stored payout rules are valid",
      passed: false,
      detail: `"${programme.name}" rule from 2025-01: tiers tier 2: thresholds must be strictly ascending (50.00 % follows 80.00 %)`,
    });
    expect(disordered[2].detail).to.include(`"${programme.name}" 2025-03: cannot be recomputed: invalid payout rule: tiers tier 2`);
    expect(await counts()).to.deep.equal(before);
  });
});
