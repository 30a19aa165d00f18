import { expect } from "chai";
import request from "supertest";
import { ImportRejected, participantsImporter } from "../../product/commands/participants-importer.ts";
import { SYSTEM_ACTOR, type ProductContext } from "../../product/product-context.ts";
import { buildAccount, TEST_PASSWORD } from "../support/factories.ts";
import { startProductApp } from "../support/product-app.ts";
import { WebClient } from "../support/web-client.ts";
import type { Express } from "express";

const HEADER = "employee_id,name,email,department,manager,country";

describe("participants: HRIS CSV import", () => {
  let app: Express;
  let ctx: ProductContext;
  let stop: () => Promise<void>;
  before(async () => ({ app, ctx, stop } = await startProductApp()));
  after(() => stop());

  const importCsv = (csv: string) => participantsImporter({ ctx, actor: SYSTEM_ACTOR, input: { csv } });

  it("imports a clean file and updates by employee id on re-import", async () => {
    const first = await importCsv(`${HEADER}\nE1,Ana Costa,ana@example.com,Sales,,nl\nE2,Ben Weber,ben@example.com,Sales,E1,DE\n`);
    expect(first).to.deep.equal({ created: 2, updated: 0 });
    const second = await importCsv(`${HEADER}\nE2,Ben Weber,ben.weber@example.com,Support,E1,DE\nE3,Chloé Moreau,chloe@example.com,Finance,E1,FR\n`);
    expect(second).to.deep.equal({ created: 1, updated: 1 });
    const ben = await ctx.models.Participant.findOne({ where: { employeeId: "E2" } });
    expect(ben!.email).to.equal("ben.weber@example.com");
    expect(ben!.department).to.equal("Support");
    const ana = await ctx.models.Participant.findOne({ where: { employeeId: "E1" } });
    expect(ana!.country).to.equal("NL");
  });

  it("imports nothing from a file with 3 bad rows, and names each row, column and reason", async () => {
    const before = await ctx.models.Participant.count();
    const csv = [
      HEADER,
      "E10,Dora,dora@example.com,Ops,,NL",
      "E11,,eli@example.com,Ops,,NL",
      "E12,Finn,not-an-email,Ops,,NL",
      "E13,Gus,gus@example.com,Ops,,Netherlands",
      "E14,Hana,hana@example.com,Ops,,SE",
    ].join("\n");
    let error: ImportRejected | undefined;
    try {
      await importCsv(csv);
    } catch (err) {
      error = err as ImportRejected;
    }
    expect(error).to.be.instanceOf(ImportRejected);
    expect(error!.errors).to.deep.equal([
      { line: 3, column: "name", reason: "is empty" },
      { line: 4, column: "email", reason: '"not-an-email" is not an e-mail address' },
      { line: 5, column: "country", reason: '"Netherlands" is not a two-letter ISO 3166 country code' },
    ]);
    expect(error!.message).to.equal("Nothing was imported: 3 problems in the file. Fix them and import the whole file again.");
    expect(await ctx.models.Participant.count()).to.equal(before);
  });

  it("names a missing column, a duplicate employee id and a broken row", async () => {
    const missing = await importCsv("employee_id,name,email\nE1,A,a@example.com\n").catch((e: ImportRejected) => e.errors);
    expect(missing).to.deep.include({
      line: 1,
      column: "country",
      reason: 'missing column "country" (expected: employee_id, name, email, department, manager, country)',
    });
    const dup = await importCsv(`${HEADER}\nE20,A,a@example.com,,,NL\nE20,B,b@example.com,,,NL\n`).catch((e: ImportRejected) => e.errors);
    expect(dup).to.deep.equal([{ line: 3, column: "employee_id", reason: '"E20" is also on line 2' }]);
    const broken = (await importCsv(`${HEADER}\nE21,A,a@example.com,,NL\n`).catch((e: ImportRejected) => e.errors)) as Array<{ reason: string }>;
    expect(broken).to.have.length(1);
    expect(broken[0].reason).to.match(/^not valid CSV/);
  });

  it("imports through the manager's page (upload with CSRF token) and shows row errors there", async () => {
    const manager = await buildAccount(ctx, "manager");
    const web = new WebClient(app);
    expect((await web.signIn(manager.username, TEST_PASSWORD)).headers.location).to.equal("/manage");
    // The import form sends its CSRF token in the action URL: it is checked before the file is read.
    const token = /action="\/manage\/participants\/import\?_csrf=([^"]+)"/.exec((await web.get("/manage/participants")).text)![1];
    const upload = (csv: string) =>
      request(app)
        .post(`/manage/participants/import?_csrf=${token}`)
        .set("Cookie", web.cookieHeader())
        .set("Accept", "text/html")
        .attach("file", Buffer.from(csv), "hris.csv")
        .redirects(0);
    const bad = await upload(`${HEADER}\nE30,,x@example.com,,,NL\n`);
    expect(bad.status).to.equal(400);
    expect(bad.text).to.include("Nothing was imported: 1 problem in the file.").and.include("<td>2</td><td>name</td><td>is empty</td>");
    const good = await upload(`${HEADER}\nE30,Ivo Jansen,ivo@example.com,Sales,,NL\n`);
    expect(good.status).to.equal(303);
    const list = await web.get(good.headers.location);
    expect(list.text).to.include("Imported 1 participants: 1 new, 0 updated.").and.include("Ivo Jansen");
    const noToken = await request(app)
      .post("/manage/participants/import")
      .set("Cookie", web.cookieHeader())
      .attach("file", Buffer.from(`${HEADER}\nE31,X,x@example.com,,,NL\n`), "hris.csv");
    expect(noToken.status).to.equal(403);
    expect(await ctx.models.Participant.count({ where: { employeeId: "E31" } })).to.equal(0);
  });

  it("keeps participants' data from participants and merchants (403)", async () => {
    for (const role of ["participant", "merchant"] as const) {
      const who =
        role === "participant"
          ? await buildAccount(ctx, role, { participantId: (await ctx.models.Participant.findOne({ where: { employeeId: "E3" } }))!.id })
          : await buildAccount(ctx, role, { merchantId: (await ctx.models.Merchant.create({ name: `M ${Date.now()}` })).id });
      const web = new WebClient(app);
      await web.signIn(who.username, TEST_PASSWORD);
      expect((await web.get("/manage/participants")).status, role).to.equal(403);
    }
  });
});
