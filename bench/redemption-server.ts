// The servers side of bench/redemption.ts, in its own process (so the load generator does not share its
// event loop): the product app and a bare Express handler on loopback, and a file of fresh voucher codes.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import express from "express";
import { clientConfig } from "../lib/db/database.ts";
import { openSequelize } from "../lib/db/sequelize.ts";
import { merchantCreator } from "../product/commands/merchant-commands.ts";
import { SYSTEM_ACTOR } from "../product/product-context.ts";
import { newShareToken, newVoucherCode } from "../product/voucher-codes.ts";
import { benchDatabase, benchProductApp } from "./support.ts";

const VOUCHERS = Number(process.env.BENCH_VOUCHERS ?? 100_000);
const codesFile = process.argv[2];

async function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const db = await benchDatabase();
const sequelize = openSequelize(clientConfig(db.server, db.database), { poolMax: 30 });
const app = benchProductApp(sequelize, {
  security: { loginMaxFailures: 5, loginWindowSeconds: 60, lockoutSeconds: 300, loginRateLimitPerMinute: 30 },
  posRateLimitPerMinute: 10_000_000, // measure the redemption path, not the limiter
});
const ctx = app.productContext;
const { merchant, apiKey } = await merchantCreator({ ctx, actor: SYSTEM_ACTOR, input: { name: "Bench merchant" } });
const participant = await ctx.models.Participant.create({ employeeId: "bench-1", name: "Bench", email: "bench@example.com", country: "NL" });
const item = await ctx.models.CatalogueItem.create({ merchantId: merchant.id, name: "Bench item", pointsCost: 1, stock: 0 });
// Vouchers are made directly: the redemption path is what is measured, not the issuing.
const codes: string[] = [];
for (let i = 0; i < VOUCHERS; i += 5000) {
  const batch = Array.from({ length: Math.min(5000, VOUCHERS - i) }, () => ({
    participantId: participant.id,
    itemId: item.id,
    merchantId: merchant.id,
    pointsCost: 1,
    code: newVoucherCode(),
    shareToken: newShareToken(),
    expiresAt: new Date(Date.now() + 86400_000),
  }));
  await ctx.models.Voucher.bulkCreate(batch);
  codes.push(...batch.map((v) => v.code));
}
writeFileSync(codesFile, codes.join("\n"), { mode: 0o600 });

const bare = express();
bare.use(express.json());
bare.post("/api/pos/redeem", (req, res) => {
  res.json({ redeemed: true, voucher: { code: req.body.code } });
});
const ready = { product: await listen(app), bare: await listen(bare), apiKey };
process.stdout.write(JSON.stringify(ready) + "\n");

const stop = async () => {
  const redeemed = await ctx.models.Voucher.count({ where: { status: "redeemed" } });
  process.stderr.write(`vouchers redeemed in the database: ${redeemed}\n`);
  await sequelize.close();
  await db.stop();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.stdin.on("end", () => void stop()); // the bench went away
process.stdin.resume();
