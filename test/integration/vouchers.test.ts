import { expect } from "chai";
import type { Express } from "express";
import jsqr from "jsqr";
import { PNG } from "pngjs";
import request from "supertest";
import { itemRedeemer } from "../../product/commands/item-redeemer.ts";
import { merchantKeyRotator } from "../../product/commands/merchant-commands.ts";
import type { Voucher } from "../../product/models/voucher.ts";
import { SYSTEM_ACTOR, type ProductContext } from "../../product/product-context.ts";
import { award, buildAccount, buildItem, buildMerchant, buildParticipant, TEST_PASSWORD } from "../support/factories.ts";
import { startProductApp } from "../support/product-app.ts";
import { WebClient } from "../support/web-client.ts";

// jsqr is CommonJS with a default export: under NodeNext its default import is the module object.
const jsQR = jsqr.default;
const ALREADY_REDEEMED =
  /^Voucher [A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4} was already redeemed on \d{4}-\d\d-\d\d \d\d:\d\d UTC\. A voucher can be redeemed only once\.$/;

describe("vouchers: POS redemption, shareable URL and QR code, storefront, merchant and manager pages", function () {
  let app: Express;
  let ctx: ProductContext;
  let stop: () => Promise<void>;
  let merchantA: { id: number; name: string; apiKey: string };
  let merchantB: { id: number; name: string; apiKey: string };
  let itemA: { id: number; name: string };
  let participantId: number;

  before(async () => {
    ({ app, ctx, stop } = await startProductApp());
    const a = await buildMerchant(ctx);
    const b = await buildMerchant(ctx);
    merchantA = { id: a.merchant.id, name: a.merchant.name, apiKey: a.apiKey };
    merchantB = { id: b.merchant.id, name: b.merchant.name, apiKey: b.apiKey };
    const item = await buildItem(ctx, merchantA.id, { pointsCost: 100, stock: 100 });
    itemA = { id: item.id, name: item.name };
    const participant = await buildParticipant(ctx, { name: "Anna Maria Jansen", email: "anna.jansen@example.com" });
    participantId = participant.id;
    await award(ctx, participantId, 5_000);
  });
  after(() => stop());

  /** A voucher as the participant gets it from the store (the command itself; the pages are tested below). */
  let requests = 0;
  async function issueVoucher(itemId = itemA.id): Promise<Voucher> {
    const actor = { id: 0, username: "test-participant", role: "participant" };
    const { voucher } = await itemRedeemer({ ctx, actor, input: { participantId, itemId, requestKey: `test-request-${++requests}-${Date.now()}` } });
    return voucher;
  }

  const redeem = (code: string, apiKey = merchantA.apiKey) => request(app).post("/api/pos/redeem").set("Authorization", `Bearer ${apiKey}`).send({ code });

  it("redeems a code exactly once when 50 tills present it at the same moment", async () => {
    const voucher = await issueVoucher();
    const answers = await Promise.all(Array.from({ length: 50 }, () => redeem(voucher.code)));

    const ok = answers.filter((r) => r.status === 200);
    const refused = answers.filter((r) => r.status === 409);
    expect(ok, answers.map((r) => `${r.status} ${r.text}`).join("\n")).to.have.length(1);
    expect(refused).to.have.length(49);
    expect(ok[0].body).to.deep.include({ redeemed: true });
    expect(ok[0].body.voucher).to.deep.include({ code: voucher.code, status: "redeemed", item: { id: itemA.id, name: itemA.name }, pointsCost: 100 });
    for (const r of refused) {
      expect(r.body.redeemed).to.equal(false);
      expect(r.body.reason).to.equal("already_redeemed");
      expect(r.body.error).to.match(ALREADY_REDEEMED);
    }

    await voucher.reload();
    expect(voucher.status).to.equal("redeemed");
    expect(voucher.redeemedByMerchantId).to.equal(merchantA.id);
    const events = await ctx.models.ProductEvent.findAll({ where: { action: "voucher.redeem", target: `voucher:${voucher.id}` } });
    expect(events.filter((e) => e.outcome === "success")).to.have.length(1);
    expect(events.filter((e) => e.outcome === "failure")).to.have.length(49);
  });

  it("refuses another merchant's voucher (404, as an unknown code) without telling its state, and leaves it redeemable", async () => {
    const voucher = await issueVoucher();
    const res = await redeem(voucher.code, merchantB.apiKey);
    expect(res.status).to.equal(404);
    expect(res.body).to.deep.equal({
      redeemed: false,
      reason: "not_valid_here",
      error: `Voucher ${voucher.code} is not valid at this merchant. Check the code and type it again; a voucher redeems only at the merchant it was issued for.`,
    });
    expect((await voucher.reload()).status).to.equal("issued");
    expect((await redeem(voucher.code)).status).to.equal(200);
  });

  it("refuses an expired voucher (410) and a cancelled one (410)", async () => {
    const expired = await issueVoucher();
    await expired.update({ expiresAt: new Date("2024-03-01T10:00:00Z") });
    const res = await redeem(expired.code);
    expect(res.status).to.equal(410);
    expect(res.body).to.deep.equal({
      redeemed: false,
      reason: "expired",
      error: `Voucher ${expired.code} expired on 2024-03-01 10:00 UTC and can no longer be redeemed.`,
    });
    expect((await expired.reload()).status).to.equal("issued");

    const cancelled = await issueVoucher();
    await cancelled.update({ status: "cancelled" });
    const res2 = await redeem(cancelled.code);
    expect(res2.status).to.equal(410);
    expect(res2.body).to.deep.equal({ redeemed: false, reason: "cancelled", error: `Voucher ${cancelled.code} was cancelled and cannot be redeemed.` });
  });

  it("answers an unknown code with 404, a malformed one or a missing one with 400, and reads codes as typed", async () => {
    const unknown = await redeem("zzzz-zzzz-zzzz");
    expect(unknown.status).to.equal(404);
    expect(unknown.body).to.deep.equal({
      redeemed: false,
      reason: "not_valid_here",
      error:
        "Voucher ZZZZ-ZZZZ-ZZZZ is not valid at this merchant. Check the code and type it again; a voucher redeems only at the merchant it was issued for.",
    });

    const malformed = await redeem("12-34");
    expect(malformed.status).to.equal(400);
    expect(malformed.body).to.deep.equal({
      error: "The voucher was not checked.",
      fields: { code: "12 letters and digits, as printed on the voucher: XXXX-XXXX-XXXX" },
    });

    const missing = await request(app).post("/api/pos/redeem").set("Authorization", `Bearer ${merchantA.apiKey}`).send({});
    expect(missing.status).to.equal(400);
    expect(missing.body).to.deep.equal({ error: 'The voucher code is missing. Send JSON {"code": "XXXX-XXXX-XXXX"} with Content-Type: application/json.' });

    const notJson = await request(app)
      .post("/api/pos/redeem")
      .set("Authorization", `Bearer ${merchantA.apiKey}`)
      .set("Content-Type", "application/json")
      .send("{code:");
    expect(notJson.status).to.equal(400);
    expect(notJson.body).to.deep.equal({
      error: 'The request body is not valid JSON. Send JSON {"code": "XXXX-XXXX-XXXX"} with Content-Type: application/json.',
    });

    const voucher = await issueVoucher();
    const typed = await redeem(` ${voucher.code.toLowerCase().replaceAll("-", " ")} `);
    expect(typed.status).to.equal(200);
    expect(typed.body.voucher.code).to.equal(voucher.code);
  });

  it("answers 401 with a clear message for a missing, malformed, unknown or rotated API key", async () => {
    const voucher = await issueVoucher();
    const none = await request(app).post("/api/pos/redeem").send({ code: voucher.code });
    expect(none.status).to.equal(401);
    expect(none.headers["www-authenticate"]).to.equal('Bearer realm="plum-pos"');
    expect(none.body).to.deep.equal({ error: "No API key: send the merchant's POS API key as the header 'Authorization: Bearer pk_…'." });

    const BAD = "This API key is not valid: it may have been rotated or the merchant disabled. Ask the programme manager for the merchant's current key.";
    for (const key of ["pk_short", `pk_${"x".repeat(40)}`]) {
      const res = await redeem(voucher.code, key);
      expect(res.status).to.equal(401);
      expect(res.body).to.deep.equal({ error: BAD });
    }

    const other = await buildMerchant(ctx);
    const { apiKey: rotated } = await merchantKeyRotator({ ctx, actor: SYSTEM_ACTOR, input: { merchantId: other.merchant.id } });
    expect((await request(app).get(`/api/pos/vouchers/${voucher.code}`).set("Authorization", `Bearer ${other.apiKey}`)).status).to.equal(401);
    expect((await request(app).get(`/api/pos/vouchers/${voucher.code}`).set("Authorization", `Bearer ${rotated}`)).status).to.equal(404); // the new key works: another merchant's code
    expect((await voucher.reload()).status).to.equal("issued");
  });

  it("checks a code without redeeming it: GET /api/pos/vouchers/:code", async () => {
    const voucher = await issueVoucher();
    const check = (code: string, apiKey = merchantA.apiKey) =>
      request(app)
        .get(`/api/pos/vouchers/${encodeURIComponent(code)}`)
        .set("Authorization", `Bearer ${apiKey}`);

    const before = await check(voucher.code);
    expect(before.status).to.equal(200);
    expect(before.body.redeemable).to.equal(true);
    expect(before.body.voucher).to.deep.include({ code: voucher.code, status: "issued", redeemedAt: null });
    expect(before.body.voucher).to.not.have.property("shareToken");
    expect((await voucher.reload()).status).to.equal("issued");

    await redeem(voucher.code);
    const after = await check(voucher.code);
    expect(after.status).to.equal(200);
    expect(after.body).to.deep.include({ redeemable: false, reason: "already_redeemed" });
    expect(after.body.error).to.match(ALREADY_REDEEMED);
    expect(after.body.voucher.status).to.equal("redeemed");

    expect((await check(voucher.code, merchantB.apiKey)).body).to.deep.equal({
      redeemable: false,
      reason: "not_valid_here",
      error: `Voucher ${voucher.code} is not valid at this merchant. Check the code and type it again; a voucher redeems only at the merchant it was issued for.`,
    });
    expect((await check("AAAA-BBBB-CCCC")).status).to.equal(404);
  });

  it("encodes the shareable URL in the QR code, and that URL shows the voucher without signing in", async () => {
    const voucher = await issueVoucher();
    const png = await request(app)
      .get(`/v/${voucher.shareToken}/qr.png`)
      .buffer(true)
      .parse((res, done) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done(null, Buffer.concat(chunks)));
      });
    expect(png.status).to.equal(200);
    expect(png.headers["content-type"]).to.equal("image/png");
    const image = PNG.sync.read(png.body as Buffer);
    const decoded = jsQR(new Uint8ClampedArray(image.data), image.width, image.height);
    expect(decoded, "the QR code did not decode").to.not.equal(null);
    const url = new URL(decoded!.data);
    expect(url.pathname).to.equal(`/v/${voucher.shareToken}`);
    expect(url.origin).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);

    const page = await request(app).get(url.pathname).set("Accept", "text/html");
    expect(page.status).to.equal(200);
    expect(page.text).to.include(`data-testid="voucher-code">${voucher.code}<`);
    expect(page.text).to.include(`data-testid="voucher-item">${itemA.name}<`);
    expect(page.text).to.include(`data-testid="voucher-merchant">${merchantA.name}<`);
    expect(page.text).to.include('data-testid="voucher-status">Valid<');
    expect(page.text).to.include(`<img class="qr" src="/v/${voucher.shareToken}/qr.svg"`);
    expect(page.text).to.include("For Anna<");
    expect(page.text).to.not.include("Jansen").and.not.include("anna.jansen@example.com");

    const svg = await request(app).get(`/v/${voucher.shareToken}/qr.svg`);
    expect(svg.status).to.equal(200);
    expect(svg.headers["content-type"]).to.equal("image/svg+xml; charset=utf-8");
    expect(String(svg.body)).to.match(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);

    await redeem(voucher.code);
    expect((await request(app).get(url.pathname)).text).to.match(/data-testid="voucher-status">Redeemed on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</);
  });

  it("uses the configured public URL in the shareable link", async () => {
    const voucher = await issueVoucher();
    ctx.publicUrl = "https://rewards.example.com/";
    try {
      const page = await request(app).get(`/v/${voucher.shareToken}`);
      expect(page.text).to.include(`data-testid="voucher-url">https://rewards.example.com/v/${voucher.shareToken}<`);
    } finally {
      ctx.publicUrl = undefined;
    }
  });

  it("answers an unknown voucher address with a 404 page", async () => {
    for (const token of ["x".repeat(43), "not a token"]) {
      const res = await request(app)
        .get(`/v/${encodeURIComponent(token)}`)
        .set("Accept", "text/html");
      expect(res.status).to.equal(404);
      expect(res.text).to.include(
        'data-testid="error-message">There is no voucher at this address. Check the link, or ask whoever gave it to you for a new one.<',
      );
      expect((await request(app).get(`/v/${encodeURIComponent(token)}/qr.png`)).status).to.equal(404);
    }
  });

  describe("pages", () => {
    async function signedIn(role: "participant" | "merchant" | "manager", link: { participantId?: number; merchantId?: number } = {}) {
      const account = await buildAccount(ctx, role, link);
      const client = new WebClient(app);
      expect((await client.signIn(account.username, TEST_PASSWORD)).status).to.equal(303);
      return client;
    }

    it("a participant redeems an item in the store and sees only their own vouchers", async () => {
      const participant = await buildParticipant(ctx, { name: "Bo Lind" });
      await award(ctx, participant.id, 250);
      const item = await buildItem(ctx, merchantA.id, { pointsCost: 200, stock: 3 });
      const client = await signedIn("participant", { participantId: participant.id });

      const store = await client.get("/store");
      expect(store.status).to.equal(200);
      expect(store.text).to.include('data-testid="balance">250<');
      expect(store.text).to.include(`Redeem ${item.name}</button>`);
      const form = new RegExp(`name="itemId" value="${item.id}">\\s*<input type="hidden" name="requestKey" value="([^"]+)"`).exec(store.text);
      const csrf = /name="_csrf" value="([^"]+)"/.exec(store.text)![1];
      const redeemed = await client.post("/store/redeem", { itemId: String(item.id), requestKey: form![1] }, csrf);
      expect(redeemed.status).to.equal(303);
      const location = redeemed.headers.location as string;
      expect(location).to.match(/^\/store\/vouchers\/\d+$/);
      // The same form sent twice (a double click) is one redemption.
      expect((await client.post("/store/redeem", { itemId: String(item.id), requestKey: form![1] }, csrf)).headers.location).to.equal(location);

      const page = await client.get(location);
      expect(page.status).to.equal(200);
      expect(page.text).to.include(`Show the code or the QR code at the till of ${merchantA.name}.`);
      const voucher = (await ctx.models.Voucher.findOne({ where: { participantId: participant.id } }))!;
      expect(page.text).to.include(`data-testid="voucher-code">${voucher.code}<`);
      expect(page.text).to.include(`src="/v/${voucher.shareToken}/qr.svg"`);
      expect(page.text).to.match(new RegExp(`<a href="http://127\\.0\\.0\\.1:\\d+/v/${voucher.shareToken}" data-testid="share-link">`));
      expect((await client.get("/store")).text).to.include('data-testid="balance">50<');

      const tooDear = await client.post("/store/redeem", { itemId: String(item.id), requestKey: "another-request-key" }, csrf);
      expect(tooDear.status).to.equal(409);
      expect(tooDear.text).to.include(`Not enough points: ${item.name} costs 200 points and your balance is 50.`);

      const list = await client.get("/store/vouchers");
      expect(list.text.match(/data-testid="voucher-row"/g)).to.have.length(1);
      const someoneElse = await client.get(`/store/vouchers/${(await issueVoucher()).id}`);
      expect(someoneElse.status).to.equal(404);
      expect(someoneElse.text).to.include("You have no voucher with this number. Your vouchers are listed under My vouchers.");
    });

    it("merchant staff redeem a code on /merchant once, and are refused the second time", async () => {
      const voucher = await issueVoucher();
      const staff = await signedIn("merchant", { merchantId: merchantA.id });
      const page = await staff.get("/merchant");
      expect(page.status).to.equal(200);
      expect(page.text).to.include(merchantA.name);
      const csrf = await staff.csrfFrom("/merchant");

      const first = await staff.post("/merchant/validate", { code: voucher.code.toLowerCase() }, csrf);
      expect(first.status).to.equal(200);
      expect(first.text).to.include(`Redeemed: ${itemA.name}</strong>`);
      const second = await staff.post("/merchant/validate", { code: voucher.code }, csrf);
      expect(second.status).to.equal(409);
      expect(second.text).to.match(
        /data-reason="already_redeemed">Voucher [A-Z0-9-]{14} was already redeemed on [^<]+ UTC\. A voucher can be redeemed only once\.</,
      );

      const empty = await staff.post("/merchant/validate", { code: "" }, csrf);
      expect(empty.status).to.equal(400);
      expect(empty.text).to.include("The voucher was not checked.");

      const otherStaff = await signedIn("merchant", { merchantId: merchantB.id });
      const elsewhere = await otherStaff.post("/merchant/validate", { code: (await issueVoucher()).code }, await otherStaff.csrfFrom("/merchant"));
      expect(elsewhere.status).to.equal(404);
      expect(elsewhere.text).to.include("is not valid at this merchant.").and.not.include(merchantA.name);
    });

    it("each role sees only its own pages", async () => {
      const participant = await buildParticipant(ctx);
      const p = await signedIn("participant", { participantId: participant.id });
      const m = await signedIn("merchant", { merchantId: merchantA.id });
      const manager = await signedIn("manager");
      expect((await p.get("/merchant")).status).to.equal(403);
      expect((await p.get("/manage/merchants")).status).to.equal(403);
      expect((await m.get("/store")).status).to.equal(403);
      expect((await m.get("/manage/catalogue")).status).to.equal(403);
      const managerStore = await manager.get("/store");
      expect(managerStore.status).to.equal(403);
      expect(managerStore.text).to.include("Your role (manager) may not view the storefront.");
      expect((await new WebClient(app).get("/store")).headers.location).to.equal("/login?next=%2Fstore");
    });

    it("a manager creates a merchant (API key shown once), a staff account and an item, and changes the item", async () => {
      const manager = await signedIn("manager");
      const csrf = await manager.csrfFrom("/manage/merchants");

      const created = await manager.post("/manage/merchants", { name: "Corner Bakery", contactEmail: "owner@bakery.example" }, csrf);
      expect(created.status).to.equal(201);
      const apiKey = /data-testid="api-key"><code>(pk_[A-Za-z0-9_-]{40})</.exec(created.text)![1];
      expect(created.text).to.include("It is shown only this once");
      const bakery = (await ctx.models.Merchant.findOne({ where: { name: "Corner Bakery" } }))!;
      const posCheck = await request(app).get("/api/pos/vouchers/AAAA-BBBB-CCCC").set("Authorization", `Bearer ${apiKey}`);
      expect(posCheck.status).to.equal(404);
      expect((await manager.get("/manage/merchants")).text).to.not.include(apiKey);

      const duplicate = await manager.post("/manage/merchants", { name: "Corner Bakery" }, csrf);
      expect(duplicate.status).to.equal(400);
      expect(duplicate.text).to.include("The merchant was not saved.").and.include("another merchant has this name");

      const rotated = await manager.post(`/manage/merchants/${bakery.id}/key`, {}, csrf);
      expect(rotated.status).to.equal(200);
      const newKey = /data-testid="api-key"><code>(pk_[A-Za-z0-9_-]{40})</.exec(rotated.text)![1];
      expect(newKey).to.not.equal(apiKey);
      expect((await request(app).get("/api/pos/vouchers/AAAA-BBBB-CCCC").set("Authorization", `Bearer ${apiKey}`)).status).to.equal(401);
      expect((await request(app).get("/api/pos/vouchers/AAAA-BBBB-CCCC").set("Authorization", `Bearer ${newKey}`)).status).to.equal(404);

      const staff = await manager.post(`/manage/merchants/${bakery.id}/staff`, { email: "Till@Bakery.example" }, csrf);
      expect(staff.status).to.equal(201);
      const oneTime = /data-testid="one-time-password"><code>([^<]+)</.exec(staff.text)![1];
      expect(staff.text).to.include("Account <strong>till@bakery.example</strong> created.");
      const till = new WebClient(app);
      expect((await till.signIn("till@bakery.example", oneTime)).headers.location).to.equal("/account/password");
      expect((await manager.get("/manage/merchants")).text).to.include("till@bakery.example<br>");

      const catalogueCsrf = await manager.csrfFrom("/manage/catalogue");
      const added = await manager.post(
        "/manage/catalogue",
        { merchantId: String(bakery.id), name: "Sourdough loaf", description: "Baked daily", pointsCost: "350", stock: "12" },
        catalogueCsrf,
      );
      expect(added.status).to.equal(303);
      expect(added.headers.location).to.equal("/manage/catalogue");
      const loaf = (await ctx.models.CatalogueItem.findOne({ where: { name: "Sourdough loaf" } }))!;
      expect({ merchantId: loaf.merchantId, pointsCost: loaf.pointsCost, stock: loaf.stock, active: loaf.active }).to.deep.equal({
        merchantId: bakery.id,
        pointsCost: 350,
        stock: 12,
        active: true,
      });
      expect((await manager.get("/manage/catalogue")).text)
        .to.include("Sourdough loaf")
        .and.include("Corner Bakery");

      const bad = await manager.post("/manage/catalogue", { merchantId: String(bakery.id), name: "Rye", pointsCost: "0", stock: "-1" }, catalogueCsrf);
      expect(bad.status).to.equal(400);
      expect(bad.text).to.include("The item was not saved.").and.include("a whole number of points, at least 1").and.include("a whole number, 0 or more");

      const changed = await manager.post(`/manage/catalogue/${loaf.id}`, { pointsCost: "300", stock: "5", active: "false" }, catalogueCsrf);
      expect(changed.status).to.equal(303);
      await loaf.reload();
      expect({ pointsCost: loaf.pointsCost, stock: loaf.stock, active: loaf.active }).to.deep.equal({ pointsCost: 300, stock: 5, active: false });
      const restocked = await manager.post(`/manage/catalogue/${loaf.id}`, { stock: "8" }, catalogueCsrf);
      expect(restocked.status).to.equal(303);
      await loaf.reload();
      expect({ pointsCost: loaf.pointsCost, stock: loaf.stock, active: loaf.active }).to.deep.equal({ pointsCost: 300, stock: 8, active: false });
    });
  });
});
