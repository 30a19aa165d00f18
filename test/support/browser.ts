import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Debian's Chromium, headless, with nothing that reaches outside this machine (Playwright gives it a fresh profile). */
export async function launchChromium(): Promise<Browser> {
  const executablePath = process.env.PLUM_CHROMIUM ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
  if (!executablePath) throw new Error("Chromium is not installed: run `npm test` (it installs Debian's chromium as root) or `apt-get install -y chromium`");
  return chromium.launch({
    executablePath,
    headless: true,
    timeout: 60_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
