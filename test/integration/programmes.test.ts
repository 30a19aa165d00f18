import { expect } from "chai";
import type { Express } from "express";
import type { ProductContext } from "../../product/product-context.ts";
import { buildAccount, buildParticipant, TEST_PASSWORD } from "../support/factories.ts";
import { startProductApp } from "../support/product-app.ts";
import { WebClient } from "../support/web-client.ts";

describe("programmes (manager pages)", () => {
  let app: Express;
  let ctx: ProductContext;
  let stop: () => Promise<void>;
  let manager: WebClient;
  before(async () => {
    ({ app, ctx, stop } = await startProductApp());
    const account = await buildAccount(ctx, "manager");
    manager = new WebClient(app);
    expect((await manager.signIn(account.username, TEST_PASSWORD)).headers.location).to.equal("/manage");
  });
  after(() => stop());

  const create = async (form: Record<string, string>) => manager.post("/manage/programmes", form, await manager.csrfFrom("/manage/programmes"));

  it("creates a programme of each kind and lists them", async () => {
    for (const [name, kind] of [
      ["Thank you", "recognition"],
      ["Q1 sales push", "sales_incentive"],
      ["Customer club", "loyalty"],
    ]) {
      const res = await create({ name, kind, currency: "eur", description: `${kind} programme` });
      expect(res.status, res.text).to.equal(303);
    }
    const page = await manager.get("/manage/programmes");
    expect(page.text).to.include("Thank you").and.include("Recognition").and.include("Sales incentive").and.include("Loyalty");
    const sales = await ctx.models.Programme.findOne({ where: { name: "Q1 sales push" } });
    expect(sales).to.include({ kind: "sales_incentive", currency: "EUR", status: "active" });
    const events = await ctx.models.ProductEvent.count({ where: { action: "programme.create" } });
    expect(events).to.equal(3);
  });

  it("refuses a duplicate name, an unknown kind and a bad currency with the fields named", async () => {
    const dup = await create({ name: "Thank you", kind: "recognition" });
    expect(dup.status).to.equal(400);
    expect(dup.text).to.include("The programme was not saved.").and.include("another programme has this name");
    const kind = await create({ name: "Odd one", kind: "lottery" });
    expect(kind.status).to.equal(400);
    expect(kind.text).to.include("one of recognition, sales_incentive, loyalty");
    const currency = await create({ name: "Odd two", kind: "loyalty", currency: "E1" });
    expect(currency.text).to.include("a three-letter ISO 4217 code, e.g. EUR");
    expect(await ctx.models.Programme.count({ where: { name: ["Odd one", "Odd two"] } })).to.equal(0);
  });

  it("archives and reactivates a programme", async () => {
    const programme = (await ctx.models.Programme.findOne({ where: { name: "Customer club" } }))!;
    const token = await manager.csrfFrom("/manage/programmes");
    expect((await manager.post(`/manage/programmes/${programme.id}`, { status: "archived" }, token)).status).to.equal(303);
    await programme.reload();
    expect(programme.status).to.equal("archived");
    expect((await manager.post(`/manage/programmes/${programme.id}`, { status: "active" }, token)).status).to.equal(303);
    await programme.reload();
    expect(programme.status).to.equal("active");
  });

  it("shows the manager's overview with live counts", async () => {
    const page = await manager.get("/manage");
    expect(page.status).to.equal(200);
    expect(page.text).to.match(/Active programmes<\/h2><p class="big">3</);
  });

  it("refuses participants (403) on every programme page and action", async () => {
    const p = await buildParticipant(ctx);
    const account = await buildAccount(ctx, "participant", { participantId: p.id });
    const web = new WebClient(app);
    await web.signIn(account.username, TEST_PASSWORD);
    expect((await web.get("/manage")).status).to.equal(403);
    expect((await web.get("/manage/programmes")).status).to.equal(403);
    const res = await web.post("/manage/programmes", { name: "Mine", kind: "loyalty" }, await web.csrfFrom("/store"));
    expect(res.status).to.equal(403);
    expect(res.text).to.include("Your role (participant) may not create programmes.");
  });
});
