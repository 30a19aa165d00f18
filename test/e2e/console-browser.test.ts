import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import type { Browser } from "playwright-core";
import { APP_VERSION } from "../../lib/version.ts";
import type { AgentProcess } from "../support/agent-process.ts";
import { launchChromium } from "../support/browser.ts";
import { RunningAppliance } from "../support/running-appliance.ts";

describe("ops console in a real browser (headless Chromium)", function () {
  this.timeout(180_000);
  let appliance: RunningAppliance;
  let agent: AgentProcess;
  let browser: Browser;

  before(async () => {
    // Secure cookies as shipped: browsers treat loopback as a secure context.
    appliance = await RunningAppliance.start({ env: { PLUM_CONSOLE_COOKIE_SECURE: "true" } });
    agent = appliance.agent;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await appliance?.stop();
  });

  it("signs in with the one-time password, changes it, and shows the dashboard", async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (msg) => msg.type() === "error" && problems.push(msg.text()));
    page.on("pageerror", (err) => problems.push(err.message));

    await page.goto(agent.consoleUrl);
    expect(new URL(page.url()).pathname).to.equal("/login");
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(agent.oneTimePassword!);
    await page.getByRole("button", { name: "Sign in" }).click();

    await page.waitForURL("**/account/password");
    expect(await page.textContent("main")).to.include("You signed in with a one-time password");
    await page.getByLabel("Current password").fill(agent.oneTimePassword!);
    await page.getByLabel(/^New password \(/).fill("plum orchard ladder 42");
    await page.getByLabel("New password again").fill("plum orchard ladder 42");
    await page.getByRole("button", { name: "Change password" }).click();

    await page.waitForURL((url) => url.pathname === "/");
    expect(await page.getByRole("status").textContent()).to.equal("Your password was changed.");
    expect(await page.getByTestId("running-version").textContent()).to.equal(APP_VERSION);
    expect(await page.getByTestId("product-health").textContent()).to.equal("Healthy");
    expect(await page.textContent("main"))
      .to.include("PostgreSQL 15.")
      .and.include(`production@${APP_VERSION}`);
    await page.screenshot({ path: path.join(tmpdir(), "plum-console-dashboard.png"), fullPage: true });

    // The stylesheet and script loaded under the CSP, and nothing was refused.
    expect(await page.evaluate(() => getComputedStyle(document.querySelector("header.top")!).display)).to.equal("flex");
    expect(problems).to.deep.equal([]);

    // Signing out ends the session: the dashboard asks for a sign-in again.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL("**/login");
    await page.goto(agent.consoleUrl);
    expect(new URL(page.url()).pathname).to.equal("/login");
  });
});
