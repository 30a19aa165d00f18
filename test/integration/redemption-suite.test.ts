import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { QueryTypes, type Sequelize } from "sequelize";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { redemptionChecks } from "../../product/validation/redemption-suite.ts";
import { freePort } from "../support/ports.ts";
import { startProductApp } from "../support/product-app.ts";

const TABLES = [
  "participants",
  "product_users",
  "product_sessions",
  "product_login_attempts",
  "merchants",
  "merchant_users",
  "catalogue_items",
  "vouchers",
  "ledger_entries",
];

const STEPS = [
  "a participant signs in",
  "redeeming an item issues a voucher",
  "the voucher page shows its code, QR code and shareable URL",
  "the shareable URL shows the voucher without signing in",
  "the voucher's QR code is served as a PNG",
  "the merchant's POS redeems the code",
  "a second redemption of the code is refused as already redeemed",
];

describe("validation suite: redemption pathway", () => {
  let stop: () => Promise<void>;
  let server: Server;
  let baseUrl: string;
  // The suite runs with its own connection, as `plumctl validate` does.
  let sequelize: Sequelize;

  before(async () => {
    const started = await startProductApp();
    stop = started.stop;
    server = createServer(started.app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    sequelize = openSequelize(clientConfig(started.dbs.server, started.dbs.product));
  });
  after(async () => {
    await sequelize.close();
    await new Promise((resolve) => server.close(resolve));
    await stop();
  });

  const rowCounts = async () =>
    Object.fromEntries(
      await Promise.all(
        TABLES.map(async (t) => [t, Number((await sequelize.query<{ n: string }>(`select count(*) as n from ${t}`, { type: QueryTypes.SELECT }))[0].n)]),
      ),
    );

  it("passes every check against a working instance and leaves no rows behind", async () => {
    const before = await rowCounts();
    const results = await redemptionChecks({ baseUrl, sequelize });
    expect(results.map((r) => r.name)).to.deep.equal([...STEPS, "its temporary data is removed"]);
    for (const r of results) expect(r.passed, `${r.name}: ${r.detail}`).to.equal(true);
    expect(results[6].detail).to.match(/^POST \/api\/pos\/redeem answered 409 \(already_redeemed\): Voucher [A-Z0-9-]{14} was already redeemed on /);
    expect(await rowCounts()).to.deep.equal(before);
  });

  it("reports the failing step and the steps it blocked, and still removes its rows", async () => {
    const before = await rowCounts();
    const closed = `http://127.0.0.1:${await freePort()}`;
    const results = await redemptionChecks({ baseUrl: closed, sequelize });
    expect(results[0]).to.deep.equal({ name: "a participant signs in", passed: false, detail: "stopped with: fetch failed" });
    expect(results.slice(1, 7).map((r) => [r.passed, r.detail])).to.deep.equal(STEPS.slice(1).map(() => [false, 'not run: "a participant signs in" failed']));
    expect(results[7]).to.deep.include({ name: "its temporary data is removed", passed: true });
    expect(await rowCounts()).to.deep.equal(before);
  });
});
