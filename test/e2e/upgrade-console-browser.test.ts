import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import type { Browser, Page } from "playwright-core";
import type { Agent } from "../../appliance/agent.ts";
import { launchChromium } from "../support/browser.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { rolledBackReport } from "../support/upgrade-rows.ts";

/** Long enough for a couple of the page's 2 s polls. */
const POLL_DEADLINE_MS = 15_000;

describe("Upgrade page in a real browser (headless Chromium)", function () {
  this.timeout(180_000);
  let agent: Agent;
  let stop: () => Promise<void>;
  let browser: Browser;

  before(async () => {
    ({ agent, stop } = await startInProcessAgent());
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await stop?.();
  });

  const stepState = (page: Page, step: string) => page.locator(`tr[data-step="${step}"] [data-field="state"]`);

  it("shows the steps of the running upgrade and follows them as the journal moves on", async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (msg) => msg.type() === "error" && problems.push(msg.text()));
    page.on("pageerror", (err) => problems.push(err.message));

    await page.goto(`${agent.urls.console}/login`);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(agent.firstAdmin!.oneTimePassword);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL("**/account/password");
    await page.getByLabel("Current password").fill(agent.firstAdmin!.oneTimePassword);
    await page.getByLabel(/^New password \(/).fill("plum orchard ladder 42");
    await page.getByLabel("New password again").fill("plum orchard ladder 42");
    await page.getByRole("button", { name: "Change password" }).click();
    await page.waitForURL((url) => url.pathname === "/");

    // An upgrade the journal shows in stage: verify and snapshot done, stage started.
    const { verify, snapshot, stage, validate } = rolledBackReport().steps;
    const u = await agent.upgrades.journal.create({
      kind: "upgrade",
      fromVersion: "1.0.0",
      toVersion: "1.1.0",
      promotion: "approval",
      requestedBy: "user:admin",
    });
    await agent.upgrades.journal.update(u.id, { step: "stage", report: { steps: { verify, snapshot, stage: { startedAt: stage.startedAt } } } });

    await page.getByRole("link", { name: "Upgrade", exact: true }).click();
    await page.waitForURL("**/upgrade");
    expect(await stepState(page, "snapshot").textContent()).to.equal("done");
    expect(await stepState(page, "stage").textContent()).to.equal("running");
    expect(await stepState(page, "validate").textContent()).to.equal("pending");
    expect(await page.getByTestId("upgrade-changed").isHidden()).to.equal(true);

    // The journal moves on between two polls: the page follows without a reload.
    await agent.upgrades.journal.update(u.id, {
      step: "validate",
      report: { steps: { verify, snapshot, stage, validate: { startedAt: validate.startedAt } } },
    });
    await page.waitForFunction(() => document.querySelector('tr[data-step="stage"] [data-field="seconds"]')?.textContent === "41.3 s", undefined, {
      timeout: POLL_DEADLINE_MS,
    });
    expect(await stepState(page, "stage").textContent()).to.equal("done");
    expect(await stepState(page, "stage").getAttribute("class")).to.equal("state-done");
    expect(await stepState(page, "validate").textContent()).to.equal("running");

    // Waiting for approval changes the actions allowed: the page says to refresh for them.
    await agent.upgrades.journal.update(u.id, { step: "promote", status: "waiting", report: { steps: { verify, snapshot, stage, validate } } });
    await page.getByTestId("upgrade-changed").waitFor({ state: "visible", timeout: POLL_DEADLINE_MS });
    expect(await stepState(page, "promote").textContent()).to.equal("waiting for an admin's approval");
    expect(await page.getByTestId("upgrade-status").textContent()).to.equal("waiting for promotion");
    await page.getByTestId("upgrade-changed").getByRole("link", { name: "refresh" }).click();
    await page.getByRole("button", { name: "Approve promotion" }).waitFor({ timeout: POLL_DEADLINE_MS });

    await page.screenshot({ path: path.join(tmpdir(), "plum-console-upgrade.png"), fullPage: true });
    expect(problems).to.deep.equal([]);
    await agent.upgrades.journal.update(u.id, { status: "aborted", error: "closed by the test" });
  });
});
