import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import jsqr from "jsqr";
import type { Browser, Page } from "playwright-core";
import { PNG } from "pngjs";
import type { Sequelize } from "sequelize";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { defineProductModels } from "../../product/models/index.ts";
import type { ProductContext } from "../../product/product-context.ts";
import type { AgentProcess } from "../support/agent-process.ts";
import { launchChromium } from "../support/browser.ts";
import { award, buildAccount, buildItem, buildMerchant, buildParticipant, TEST_PASSWORD } from "../support/factories.ts";
import { TEST_SECURITY } from "../support/product-app.ts";
import { RunningAppliance } from "../support/running-appliance.ts";

const jsQR = jsqr.default;

describe("redemption in a real browser (headless Chromium, agent process, edge proxy)", function () {
  this.timeout(180_000);
  let appliance: RunningAppliance;
  let agent: AgentProcess;
  let browser: Browser;
  let sequelize: Sequelize;
  const seeded = { participant: "", merchantStaff: "", itemName: "", merchantName: "" };

  before(async () => {
    appliance = await RunningAppliance.start({ env: { PLUM_HTTP_COOKIE_SECURE: "true", PLUM_CONSOLE_COOKIE_SECURE: "true" } });
    agent = appliance.agent;
    // The agent has migrated the product database: seed it through the product's own commands.
    sequelize = openSequelize(clientConfig(appliance.dbs.server, appliance.dbs.product));
    const models = defineProductModels(sequelize);
    const ctx: ProductContext = {
      sequelize,
      models,
      auth: { sequelize, models: models.auth, audit: models.events, security: TEST_SECURITY, sessionHours: 12 },
    };
    const participant = await buildParticipant(ctx, { name: "Rosa Delgado" });
    await award(ctx, participant.id, 1_000);
    seeded.participant = (await buildAccount(ctx, "participant", { participantId: participant.id })).username;
    const { merchant } = await buildMerchant(ctx, { name: "Harbour Books" });
    seeded.merchantName = merchant.name;
    seeded.itemName = (await buildItem(ctx, merchant.id, { name: "Paperback voucher", pointsCost: 400, stock: 5 })).name;
    seeded.merchantStaff = (await buildAccount(ctx, "merchant", { merchantId: merchant.id })).username;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await sequelize?.close();
    await appliance?.stop();
  });

  /** A page in a fresh browser context (its own cookies), collecting console errors and CSP refusals. */
  async function freshPage(problems: string[]): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    page.on("console", (msg) => msg.type() === "error" && problems.push(msg.text()));
    page.on("pageerror", (err) => problems.push(err.message));
    return page;
  }

  async function signIn(page: Page, username: string) {
    await page.goto(agent.proxyUrl);
    expect(new URL(page.url()).pathname).to.equal("/login");
    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Password").fill(TEST_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  it("a participant redeems an item and gets a voucher with a QR code; the merchant redeems it once", async () => {
    const problems: string[] = [];
    const participant = await freshPage(problems);
    await signIn(participant, seeded.participant);
    await participant.waitForURL("**/store");
    expect(await participant.getByTestId("balance").textContent()).to.equal("1000");
    await participant.getByRole("button", { name: `Redeem ${seeded.itemName}` }).click();

    await participant.waitForURL(/\/store\/vouchers\/\d+$/);
    expect(await participant.getByTestId("voucher-merchant").textContent()).to.equal(seeded.merchantName);
    const code = (await participant.getByTestId("voucher-code").textContent())!;
    expect(code).to.match(/^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/);
    const qr = participant.locator("img.qr");
    expect(await qr.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).to.equal(true);
    // What a phone's camera would read off the screen: the voucher's shareable URL, through the proxy.
    const shot = PNG.sync.read(await qr.screenshot());
    const scanned = jsQR(new Uint8ClampedArray(shot.data), shot.width, shot.height);
    expect(scanned, "the QR code on the page did not decode").to.not.equal(null);
    const shareUrl = scanned!.data;
    expect(shareUrl.startsWith(`${agent.proxyUrl.replace(/\/$/, "")}/v/`), shareUrl).to.equal(true);
    expect(await participant.getByTestId("share-link").getAttribute("href")).to.equal(shareUrl);
    await participant.screenshot({ path: path.join(tmpdir(), "plum-voucher.png"), fullPage: true });

    // The shareable URL works for anyone holding it, without signing in.
    const holder = await freshPage(problems);
    await holder.goto(shareUrl);
    expect(await holder.getByTestId("voucher-code").textContent()).to.equal(code);
    expect(await holder.getByTestId("voucher-status").textContent()).to.equal("Valid");

    const till = await freshPage(problems);
    await signIn(till, seeded.merchantStaff);
    await till.waitForURL("**/merchant");
    await till.getByLabel("Voucher code").fill(code.toLowerCase());
    await till.getByRole("button", { name: "Redeem voucher" }).click();
    await till.waitForLoadState();
    expect(await till.getByTestId("validation-result").innerText()).to.include(`Redeemed: ${seeded.itemName}`);
    expect(await till.getByTestId("validation-result").evaluate((el) => getComputedStyle(el).color)).to.equal("rgb(26, 127, 55)");

    await till.getByLabel("Voucher code").fill(code);
    await till.getByRole("button", { name: "Redeem voucher" }).click();
    await till.waitForLoadState();
    const refused = await till.getByTestId("validation-result").innerText();
    expect(refused).to.include("Refused");
    expect(refused).to.match(new RegExp(`Voucher ${code} was already redeemed on .+ UTC\\. A voucher can be redeemed only once\\.`));

    await holder.reload();
    expect(await holder.getByTestId("voucher-status").textContent()).to.match(/^Redeemed on /);
    // The refused redemption answers 409; Chromium reports any non-2xx page load on the console.
    expect(problems.filter((p) => !/status of 409/.test(p))).to.deep.equal([]);
  });
});
