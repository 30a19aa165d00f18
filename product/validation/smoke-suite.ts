import { randomUUID } from "node:crypto";
import { balanceOf } from "../commands/ledger.ts";
import { HttpSession } from "./http-session.ts";
import { check, type CheckResult, type SuiteEnv } from "./suite.ts";
import { createTemporaryShop, removeTemporaryShop } from "./temporary-data.ts";

/** A participant signs in, browses the store and redeems an item, all through HTTP; the data is removed after. */
export async function smokeChecks(env: SuiteEnv): Promise<CheckResult[]> {
  const shop = await createTemporaryShop(env.sequelize, "smoke");
  const checks: CheckResult[] = [];
  try {
    const http = new HttpSession(env.baseUrl);
    const login = await http.postForm("/login", { username: shop.participantLogin.username, password: shop.participantLogin.password }, "/login");
    checks.push(
      check("a participant signs in", login.status === 303 && login.location === "/store", `POST /login answered ${login.status} → ${login.location}`),
    );
    const store = await http.get("/store");
    checks.push(
      check(
        "the store lists the catalogue",
        store.status === 200 && store.text.includes(shop.itemName),
        `GET /store answered ${store.status}${store.text.includes(shop.itemName) ? "" : `, without "${shop.itemName}"`}`,
      ),
    );
    const redeem = await http.postForm("/store/redeem", { itemId: String(shop.itemId), requestKey: randomUUID() }, "/store");
    const voucherPath = redeem.location ?? "";
    checks.push(
      check(
        "redeeming an item issues a voucher",
        redeem.status === 303 && /^\/store\/vouchers\/\d+$/.test(voucherPath),
        `POST /store/redeem answered ${redeem.status} → ${voucherPath || "(no redirect)"}`,
      ),
    );
    if (voucherPath) {
      const voucher = await http.get(voucherPath);
      checks.push(
        check(
          "the voucher page shows its code",
          voucher.status === 200 && /[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}/.test(voucher.text),
          `GET ${voucherPath} answered ${voucher.status}`,
        ),
      );
    }
    const balance = await balanceOf(shop.ctx, shop.participantId);
    checks.push(
      check(
        "the balance went down by the item's cost",
        balance === shop.startingPoints - shop.itemCost,
        `balance ${balance}, expected ${shop.startingPoints - shop.itemCost}`,
      ),
    );
  } finally {
    await removeTemporaryShop(shop);
  }
  return checks;
}
