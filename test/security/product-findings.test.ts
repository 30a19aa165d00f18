import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { expect } from "chai";
import type { Express } from "express";
import { pino } from "pino";
import type { Sequelize } from "sequelize";
import request from "supertest";
import { probeHealth } from "../../appliance/runtimes/runtime.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { waitFor } from "../../lib/wait.ts";
import { createProductApp } from "../../product/app.ts";
import { itemRedeemer } from "../../product/commands/item-redeemer.ts";
import { parseParticipantsCsv } from "../../product/commands/participants-importer.ts";
import type { ProductContext } from "../../product/product-context.ts";
import { award, buildAccount, buildItem, buildMerchant, buildParticipant, TEST_PASSWORD } from "../support/factories.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { TEST_SECURITY } from "../support/product-app.ts";
import { WebClient } from "../support/web-client.ts";

const HEADER = "employee_id,name,email,department,manager,country";
const MAX_ROWS = 500;
const POS_LIMIT = 5;

/** The real product app on a fresh database of the test cluster, its access log kept in memory. */
function productApp(sequelize: Sequelize) {
  const lines: string[] = [];
  const logger = pino({ level: "info", base: { name: "instance-production" } }, { write: (line: string) => void lines.push(line) });
  const app = createProductApp({
    sequelize,
    logger,
    slot: "production",
    sessionKey: Buffer.alloc(32, 7),
    secureCookies: true,
    security: TEST_SECURITY,
    sessionHours: 12,
    posRateLimitPerMinute: POS_LIMIT,
    importMaxRows: MAX_ROWS,
  });
  return { app, ctx: app.productContext, log: () => lines.join("") };
}

/** The CSRF token of a page's import form (the action URL carries it, so it is checked before the body is read). */
function importToken(html: string): string {
  const token = /action="[^"]*\?_csrf=([^"&]+)"/.exec(html)?.[1] ?? /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!token) throw new Error("no CSRF token on the page");
  return token;
}

/**
 * Send the head of a multipart request that announces a body of `announcedBytes` and only the first 64 KiB of
 * it, and wait for an answer: a server that waits for (or buffers) the body before deciding never answers.
 */
async function answerBeforeBody(url: string, headers: Record<string, string>, announcedBytes = 50 * 1024 * 1024): Promise<{ status: number; body: string }> {
  const boundary = "----plum-test-boundary";
  const req = http.request(url, {
    method: "POST",
    headers: { ...headers, "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": String(announcedBytes), accept: "text/html" },
  });
  let answer: { status: number; body: string } | undefined;
  req.on("response", (res) => {
    let body = "";
    res.on("data", (d) => (body += d));
    res.on("end", () => (answer = { status: res.statusCode ?? 0, body }));
  });
  req.on("error", () => undefined);
  req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n`);
  req.write(Buffer.alloc(64 * 1024, "a"));
  try {
    return await waitFor("an answer before the body was sent", async () => answer, { timeoutMs: 10_000 });
  } finally {
    req.destroy();
  }
}

describe("security: the product's medium and low findings (issue 11)", function () {
  let dbs: FreshDatabases;
  let sequelize: Sequelize;
  let app: Express;
  let ctx: ProductContext;
  let log: () => string;
  let server: http.Server;
  let base: string;

  before(async () => {
    dbs = await freshDatabases({ migrated: true });
    sequelize = openSequelize(clientConfig(dbs.server, dbs.product), { poolMax: 20 });
    ({ app, ctx, log } = productApp(sequelize));
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await sequelize.close();
    await dbs.drop();
  });

  async function manager(): Promise<WebClient> {
    const account = await buildAccount(ctx, "manager");
    const web = new WebClient(app);
    expect((await web.signIn(account.username, TEST_PASSWORD)).headers.location).to.equal("/manage");
    return web;
  }

  const upload = (web: WebClient, token: string, csv: string | Buffer) =>
    request(app)
      .post(`/manage/participants/import?_csrf=${encodeURIComponent(token)}`)
      .set("Cookie", web.cookieHeader())
      .set("Accept", "text/html")
      .field("_csrf", token) // where a form field (read only after the check) held it before; ignored now
      .attach("file", Buffer.from(csv), "hris.csv")
      .redirects(0);

  describe("a. multipart bodies are read only by the two imports, after sign-in, CSRF and permission", () => {
    it("answers a multipart POST to any other route without reading its 50 MiB body", async () => {
      const signIn = await answerBeforeBody(`${base}/login`, {});
      expect(signIn.status).to.equal(403);
      expect(signIn.body).to.include("missing or wrong CSRF token");
    });

    it("answers a signed-out upload to an import route, with a valid anonymous CSRF token, before reading its body (401)", async () => {
      const anon = new WebClient(app);
      const token = await anon.csrfFrom("/login");
      const res = await answerBeforeBody(`${base}/manage/participants/import?_csrf=${token}`, { cookie: anon.cookieHeader() });
      expect(res.status).to.equal(401);
      expect(res.body).to.include("Sign in first.");
    });

    it("answers a signed-in participant's upload (not allowed to import) before reading its body (403)", async () => {
      const participant = await buildParticipant(ctx);
      const account = await buildAccount(ctx, "participant", { participantId: participant.id });
      const web = new WebClient(app);
      await web.signIn(account.username, TEST_PASSWORD);
      const token = await web.csrfFrom("/account/password");
      const res = await answerBeforeBody(`${base}/manage/participants/import?_csrf=${token}`, { cookie: web.cookieHeader() });
      expect(res.status).to.equal(403);
    });

    it("refuses a manager's file over 50 MiB (413) and leaves no upload on disk", async () => {
      const web = await manager();
      const token = importToken((await web.get("/manage/participants")).text);
      const boundary = "----plum-test-boundary";
      const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n${HEADER}\n`);
      const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
      const filler = Buffer.alloc(51 * 1024 * 1024, "a");
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${base}/manage/participants/import?_csrf=${token}`, {
          method: "POST",
          headers: {
            cookie: web.cookieHeader(),
            accept: "text/html",
            "content-type": `multipart/form-data; boundary=${boundary}`,
            "content-length": String(head.length + filler.length + tail.length),
          },
        });
        req.on("response", (r) => {
          let body = "";
          r.on("data", (d) => (body += d));
          r.on("end", () => resolve({ status: r.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.write(head);
        req.write(filler);
        req.end(tail);
      });
      expect(res.status).to.equal(413);
      expect(res.body).to.include("The file is larger than 50 MiB, the most one import takes. Split it and import each part.");
      await waitFor("the upload folder to be removed", async () => (uploadDirs().length === 0 ? true : undefined), { timeoutMs: 10_000 });
    });

    it("imports a manager's file streamed to a temporary folder, removed after the import", async () => {
      const web = await manager();
      const token = importToken((await web.get("/manage/participants")).text);
      const res = await upload(web, token, `${HEADER}\nS-1,Ida Visser,ida@example.com,Sales,,NL\n`);
      expect(res.status, res.text).to.equal(303);
      expect(await ctx.models.Participant.count({ where: { employeeId: "S-1" } })).to.equal(1);
      await waitFor("the upload folder to be removed", async () => (uploadDirs().length === 0 ? true : undefined), { timeoutMs: 10_000 });
    });
  });

  const uploadDirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith("plum-csv-upload-"));

  describe("h. HRIS import: at most 100 problems, a row cap, no blocked event loop", () => {
    it("stops at 100 problems and says there may be more", async () => {
      const web = await manager();
      const token = importToken((await web.get("/manage/participants")).text);
      const rows = Array.from({ length: 300 }, (_, i) => `H-${i},,h${i}@example.com,,,NL`);
      const res = await upload(web, token, `${HEADER}\n${rows.join("\n")}\n`);
      expect(res.status).to.equal(400);
      expect(res.text).to.include(
        "Nothing was imported: the file has at least 100 problems, so reading stopped there; the first 100 are listed. Fix them (and check the rest of the file) and import the whole file again.",
      );
      expect(res.text.match(/<td>name<\/td><td>is empty<\/td>/g)).to.have.length(100);
      expect(await ctx.models.Participant.count({ where: { employeeId: "H-0" } })).to.equal(0);
    });

    it(`refuses a file of more than imports.maxRows (${MAX_ROWS}) rows, importing nothing`, async () => {
      const web = await manager();
      const token = importToken((await web.get("/manage/participants")).text);
      const rows = Array.from({ length: MAX_ROWS + 1 }, (_, i) => `R-${i},Row ${i},r${i}@example.com,,,NL`);
      const res = await upload(web, token, `${HEADER}\n${rows.join("\n")}\n`);
      expect(res.status).to.equal(400);
      expect(res.text).to.include(
        `Nothing was imported: the file has more than ${MAX_ROWS} rows, the most one import takes (imports.maxRows in plum.yaml). Split it into files of at most ${MAX_ROWS} rows and import each, or ask the appliance admin to raise imports.maxRows.`,
      );
      expect(await ctx.models.Participant.count({ where: { employeeId: "R-0" } })).to.equal(0);
    });

    it("gives the event loop turns while it parses a large file", async () => {
      const rows = Array.from({ length: 20_000 }, (_, i) => `L-${i},Large ${i},l${i}@example.com,Sales,,NL`);
      const csv = Buffer.from(`${HEADER}\n${rows.join("\n")}\n`);
      let turns = 0;
      let spinning = true;
      const spin = () => {
        turns++;
        if (spinning) setImmediate(spin);
      };
      setImmediate(spin);
      const parsed = await parseParticipantsCsv(csv);
      const during = turns;
      spinning = false;
      expect(parsed).to.have.length(20_000);
      // The file is 20 chunks of 64 KiB; parsing it in one go (the old synchronous parse) gives the loop no turn.
      expect(during).to.be.at.least(10);
    });
  });

  describe("d. the POS limiter keys on the parsed API key, and counts refused keys per address", () => {
    it("puts every spelling of one key's Authorization header in the same bucket", async () => {
      const { apiKey } = await buildMerchant(ctx);
      const spellings = [`Bearer ${apiKey}`, `bearer ${apiKey}`, `BEARER ${apiKey}`, `Bearer  ${apiKey}`, `Bearer\t${apiKey} `, `bEaReR   ${apiKey}`];
      const statuses: number[] = [];
      for (const authorization of spellings) {
        statuses.push((await request(app).get("/api/pos/vouchers/AAAA-BBBB-CCCC").set("Authorization", authorization)).status);
      }
      expect(statuses).to.deep.equal([404, 404, 404, 404, 404, 429]);
    });

    it("limits refused API keys per address, whatever key each request makes up", async () => {
      const address = "198.51.100.23"; // as the edge proxy reports the client
      const statuses: number[] = [];
      for (let i = 0; i < 31; i++) {
        const res = await request(app)
          .post("/api/pos/redeem")
          .set("X-Forwarded-For", address)
          .set("Authorization", `Bearer pk_${randomBytes(16).toString("hex")}`)
          .send({ code: "AAAA-BBBB-CCCC" });
        statuses.push(res.status);
      }
      expect(statuses.slice(0, 30).every((s) => s === 401)).to.equal(true);
      expect(statuses[30]).to.equal(429);
      // Until the window ends that address gets no answer that could tell a valid key; another address is not held up.
      const { apiKey } = await buildMerchant(ctx);
      const valid = await request(app).get("/api/pos/vouchers/AAAA-BBBB-CCCC").set("X-Forwarded-For", address).set("Authorization", `Bearer ${apiKey}`);
      expect(valid.status).to.equal(429);
      expect(valid.body).to.deep.equal({
        error: "Too many requests with a missing or refused API key from your address. Wait a minute and try again with the merchant's current key.",
      });
      const other = await request(app).get("/api/pos/vouchers/AAAA-BBBB-CCCC").set("X-Forwarded-For", "198.51.100.24").set("Authorization", `Bearer ${apiKey}`);
      expect(other.status).to.equal(404);
    });
  });

  /** A voucher of merchant `merchantId`, as a participant gets it from the store. */
  async function voucherOf(merchantId: number) {
    const participant = await buildParticipant(ctx);
    await award(ctx, participant.id, 1_000);
    const item = await buildItem(ctx, merchantId, { pointsCost: 100, stock: 5 });
    const actor = { id: 0, username: "test-participant", role: "participant" };
    const { voucher } = await itemRedeemer({
      ctx,
      actor,
      input: { participantId: participant.id, itemId: item.id, requestKey: `sec-${randomBytes(6).toString("hex")}` },
    });
    return voucher;
  }

  describe("f. another merchant's code reads exactly as a code that does not exist", () => {
    it("answers check and redeem alike for another merchant's voucher and for an unknown code", async () => {
      const a = await buildMerchant(ctx);
      const b = await buildMerchant(ctx);
      const voucher = await voucherOf(a.merchant.id);
      const unknown = "ZZZZ-ZZZZ-ZZ22";
      const pos = (apiKey: string) => ({
        check: (code: string) => request(app).get(`/api/pos/vouchers/${code}`).set("Authorization", `Bearer ${apiKey}`),
        redeem: (code: string) => request(app).post("/api/pos/redeem").set("Authorization", `Bearer ${apiKey}`).send({ code }),
      });
      const asB = pos(b.apiKey);
      const anonymised = (res: request.Response, code: string) => ({ status: res.status, body: JSON.parse(JSON.stringify(res.body).replaceAll(code, "CODE")) });

      const checkOther = await asB.check(voucher.code);
      const checkUnknown = await asB.check(unknown);
      expect(anonymised(checkOther, voucher.code)).to.deep.equal(anonymised(checkUnknown, unknown));
      expect(checkOther.status).to.equal(404);
      expect(checkOther.body).to.deep.equal({
        redeemable: false,
        reason: "not_valid_here",
        error: `Voucher ${voucher.code} is not valid at this merchant. Check the code and type it again; a voucher redeems only at the merchant it was issued for.`,
      });
      expect(checkOther.text).to.not.include(a.merchant.name);

      const redeemOther = await asB.redeem(voucher.code);
      const redeemUnknown = await asB.redeem(unknown);
      expect(anonymised(redeemOther, voucher.code)).to.deep.equal(anonymised(redeemUnknown, unknown));
      expect(redeemOther.body).to.include({ redeemed: false, reason: "not_valid_here" });
      expect((await voucher.reload()).status).to.equal("issued");
      // The product's own event log still tells them apart.
      const events = await ctx.models.ProductEvent.findAll({ where: { action: "voucher.redeem", outcome: "failure", actor: `pos:merchant:${b.merchant.id}` } });
      expect(events.map((e) => (e.detail as { reason: string }).reason).sort()).to.deep.equal(["other_merchant", "unknown_code"]);
    });
  });

  describe("e. the access log holds no share token, POS code or token in a query", () => {
    it("redacts /v/:token, /api/pos/vouchers/:code and ?_csrf= in every line it writes", async () => {
      const { merchant, apiKey } = await buildMerchant(ctx);
      const voucher = await voucherOf(merchant.id);
      expect((await request(app).get(`/v/${voucher.shareToken}`)).status).to.equal(200);
      expect((await request(app).get(`/v/${voucher.shareToken}/qr.svg`)).status).to.equal(200);
      expect((await request(app).get(`/v/not-a-token-${voucher.shareToken.slice(0, 4)}x`)).status).to.equal(404);
      expect((await request(app).get(`/api/pos/vouchers/${voucher.code}`).set("Authorization", `Bearer ${apiKey}`)).status).to.equal(200);
      const web = await manager();
      const token = importToken((await web.get("/manage/participants")).text);
      expect((await upload(web, token, `${HEADER}\nE-LOG,Log Test,log@example.com,,,NL\n`)).status).to.equal(303);

      const text = log();
      expect(text).to.include('"url":"/v/[redacted]"').and.include('"url":"/v/[redacted]/qr.svg"').and.include('"url":"/api/pos/vouchers/[redacted]"');
      expect(text).to.include('"url":"/manage/participants/import?_csrf=[redacted]"');
      for (const secret of [voucher.shareToken, voucher.code, token, apiKey]) expect(text, secret).to.not.include(secret);
    });
  });

  describe("g. /readyz says the database is unavailable, and the log says why", () => {
    it("answers without the database's error, which goes to the instance log; the agent's probe still reads a reason", async () => {
      const missing = `plum_missing_${randomBytes(4).toString("hex")}`;
      const broken = openSequelize(clientConfig(dbs.server, missing), { poolMax: 2 });
      const down = productApp(broken);
      const downServer = http.createServer(down.app);
      await new Promise<void>((resolve) => downServer.listen(0, "127.0.0.1", resolve));
      try {
        const res = await request(down.app).get("/readyz");
        expect(res.status).to.equal(503);
        expect(res.body).to.deep.equal({ status: "database-unreachable", error: "not ready: database unavailable" });
        expect(res.text).to.not.include(missing);
        expect(down.log()).to.include(`database \\"${missing}\\" does not exist`);

        const health = await probeHealth(`http://127.0.0.1:${(downServer.address() as AddressInfo).port}`);
        expect(health).to.include({ live: true, ready: false, detail: '/readyz: {"status":"database-unreachable","error":"not ready: database unavailable"}' });
      } finally {
        downServer.closeAllConnections();
        await new Promise((resolve) => downServer.close(resolve));
        await broken.close();
      }
    });
  });
});
