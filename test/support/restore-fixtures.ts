import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import type { Sequelize } from "sequelize";
import { sha256OfFile } from "../../backup/restore/manifest-verifier.ts";
import { createLogger } from "../../lib/logger.ts";
import { clientConfig, type PgServer } from "../../lib/db/database.ts";
import { createProductApp } from "../../product/app.ts";
import { itemRedeemer } from "../../product/commands/item-redeemer.ts";
import type { ProductContext } from "../../product/product-context.ts";
import { award, buildItem, buildMerchant, buildParticipant } from "./factories.ts";
import { TEST_SECURITY } from "./product-app.ts";

/** A product context over an existing product database (the app is built, never listens). */
export function productContextOn(sequelize: Sequelize): ProductContext {
  const app = createProductApp({
    sequelize,
    logger: createLogger("test-product", { level: "silent" }),
    slot: "production",
    sessionKey: Buffer.alloc(32, 7),
    secureCookies: true,
    security: TEST_SECURITY,
    sessionHours: 12,
  });
  return app.productContext;
}

/** Rows in most product tables (participants, ledger, merchant, catalogue, a voucher) and a few files, nested. */
export async function seedProductData(product: ProductContext, filesDir: string): Promise<void> {
  const participants = [await buildParticipant(product), await buildParticipant(product), await buildParticipant(product)];
  for (const p of participants) await award(product, p.id, 500);
  const { merchant } = await buildMerchant(product);
  const item = await buildItem(product, merchant.id, { pointsCost: 100, stock: 5 });
  await buildItem(product, merchant.id, { pointsCost: 250, stock: 2 });
  await itemRedeemer({
    ctx: product,
    actor: { id: -1, username: "tester", role: "participant" },
    input: { participantId: participants[0].id, itemId: item.id, requestKey: randomUUID() },
  });
  mkdirSync(path.join(filesDir, "merchants", String(merchant.id)), { recursive: true });
  mkdirSync(path.join(filesDir, "imports"), { recursive: true });
  writeFileSync(path.join(filesDir, "merchants", String(merchant.id), "logo.png"), randomBytes(20_000));
  writeFileSync(path.join(filesDir, "imports", "hris-2024-11.csv"), "employee_id,name\nE-1,Ada\nE-2,Grace\n");
  writeFileSync(path.join(filesDir, "terms.txt"), "Points expire after 24 months.\n");
}

/** Every table of the public schema: its row count and a digest of its content, to compare before and after. */
export async function tableDigests(server: PgServer, database: string): Promise<Record<string, { rows: number; md5: string }>> {
  const client = new pg.Client(clientConfig(server, database));
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ name: string }>("select tablename as name from pg_tables where schemaname = 'public' order by 1");
    const digests: Record<string, { rows: number; md5: string }> = {};
    for (const { name } of tables) {
      const t = pg.escapeIdentifier(name);
      const { rows } = await client.query<{ n: string; md5: string }>(
        `select count(*) as n, md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as md5 from ${t} x`,
      );
      digests[name] = { rows: Number(rows[0].n), md5: rows[0].md5 };
    }
    return digests;
  } finally {
    await client.end();
  }
}

/** sha256 of every file below `dir`, by path relative to it. */
export async function fileDigests(dir: string): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const full = path.join(e.parentPath, e.name);
    digests[path.relative(dir, full).split(path.sep).join("/")] = await sha256OfFile(full);
  }
  return digests;
}

export async function databaseNames(server: PgServer, like: string): Promise<string[]> {
  const client = new pg.Client(clientConfig(server, "postgres"));
  await client.connect();
  try {
    return (await client.query<{ datname: string }>("select datname from pg_database where datname like $1 order by 1", [like])).rows.map((r) => r.datname);
  } finally {
    await client.end();
  }
}
