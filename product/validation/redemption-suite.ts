import { randomUUID } from "node:crypto";
import { HttpSession } from "./http-session.ts";
import { check, type CheckResult, type SuiteEnv } from "./suite.ts";
import { createTemporaryShop, removeTemporaryShop } from "./temporary-data.ts";

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function posRedeem(baseUrl: string, apiKey: string, code: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(new URL("/api/pos/redeem", baseUrl), {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ code }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
  } catch {
    return { status: res.status, body: { error: `not JSON: ${text.slice(0, 200)}` } };
  }
}

type Step = { name: string; run: () => Promise<{ passed: boolean; detail: string }> };

/** Run steps in order; after the first failure the rest are reported as not run (each needs the one before). */
async function inOrder(steps: Step[]): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let failed: string | undefined;
  for (const step of steps) {
    if (failed) {
      results.push(check(step.name, false, `not run: "${failed}" failed`));
      continue;
    }
    const outcome = await step.run().catch((err: Error) => ({ passed: false, detail: `stopped with: ${err.message}` }));
    results.push(check(step.name, outcome.passed, outcome.detail));
    if (!outcome.passed) failed = step.name;
  }
  return results;
}

/**
 * The redemption pathway of `plumctl validate`, all through HTTP: a participant redeems an item, the voucher's
 * page gives its code, QR code and shareable URL, that URL works without signing in, the merchant's POS redeems
 * the code, and a second redemption is refused. Its temporary participant, merchant, item, voucher and ledger
 * rows are removed at the end, also when a check fails.
 */
export async function redemptionChecks(env: SuiteEnv): Promise<CheckResult[]> {
  const shop = await createTemporaryShop(env.sequelize, "redemption");
  const participant = new HttpSession(env.baseUrl);
  let voucherPath = "";
  let code = "";
  let sharePath = "";
  const steps: Step[] = [
    {
      name: "a participant signs in",
      run: async () => {
        const login = await participant.postForm("/login", { username: shop.participantLogin.username, password: shop.participantLogin.password }, "/login");
        return {
          passed: login.status === 303 && login.location === "/store",
          detail: `POST /login answered ${login.status} → ${login.location ?? "(no redirect)"}`,
        };
      },
    },
    {
      name: "redeeming an item issues a voucher",
      run: async () => {
        const redeem = await participant.postForm("/store/redeem", { itemId: String(shop.itemId), requestKey: randomUUID() }, "/store");
        voucherPath = redeem.location ?? "";
        return {
          passed: redeem.status === 303 && /^\/store\/vouchers\/\d+$/.test(voucherPath),
          detail: `POST /store/redeem answered ${redeem.status} → ${voucherPath || "(no redirect)"}`,
        };
      },
    },
    {
      name: "the voucher page shows its code, QR code and shareable URL",
      run: async () => {
        const page = await participant.get(voucherPath);
        code = /data-testid="voucher-code">([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</.exec(page.text)?.[1] ?? "";
        const shareUrl = /data-testid="voucher-url">([^<]+)</.exec(page.text)?.[1] ?? "";
        sharePath = /\/v\/[A-Za-z0-9_-]+$/.test(shareUrl) ? new URL(shareUrl).pathname : "";
        const qrShown = sharePath !== "" && page.text.includes(`src="${sharePath}/qr.svg"`);
        return {
          passed: page.status === 200 && code !== "" && sharePath !== "" && qrShown,
          detail: `GET ${voucherPath} answered ${page.status}: code ${code || "missing"}, shareable URL ${shareUrl || "missing"}, QR image ${qrShown ? "shown" : "missing"}`,
        };
      },
    },
    {
      name: "the shareable URL shows the voucher without signing in",
      run: async () => {
        const page = await new HttpSession(env.baseUrl).get(sharePath);
        return {
          passed: page.status === 200 && page.text.includes(code),
          detail: `GET ${sharePath.slice(0, 12)}… answered ${page.status}${page.text.includes(code) ? " with the code" : " without the code"}`,
        };
      },
    },
    {
      name: "the voucher's QR code is served as a PNG",
      run: async () => {
        const res = await fetch(new URL(`${sharePath}/qr.png`, env.baseUrl), { signal: AbortSignal.timeout(10_000) });
        const bytes = Buffer.from(await res.arrayBuffer());
        const png = bytes.subarray(0, 8).equals(PNG_SIGNATURE);
        return {
          passed: res.status === 200 && png,
          detail: `answered ${res.status}, ${res.headers.get("content-type")}, ${bytes.length} bytes${png ? "" : ", not a PNG"}`,
        };
      },
    },
    {
      name: "the merchant's POS redeems the code",
      run: async () => {
        const first = await posRedeem(env.baseUrl, shop.merchantApiKey, code);
        return {
          passed: first.status === 200 && first.body.redeemed === true,
          detail: `POST /api/pos/redeem answered ${first.status}${first.body.error ? `: ${first.body.error}` : ""}`,
        };
      },
    },
    {
      name: "a second redemption of the code is refused as already redeemed",
      run: async () => {
        const again = await posRedeem(env.baseUrl, shop.merchantApiKey, code);
        return {
          passed: again.status === 409 && again.body.reason === "already_redeemed",
          detail: `POST /api/pos/redeem answered ${again.status} (${again.body.reason ?? "no reason"}): ${again.body.error ?? ""}`,
        };
      },
    },
  ];
  const results = await inOrder(steps);
  try {
    await removeTemporaryShop(shop);
    results.push(
      check(
        "its temporary data is removed",
        true,
        `participant #${shop.participantId}, merchant #${shop.merchantId}, item #${shop.itemId}, their vouchers, ledger entries and account`,
      ),
    );
  } catch (err) {
    results.push(check("its temporary data is removed", false, `cleanup stopped with: ${(err as Error).message}`));
  }
  return results;
}
