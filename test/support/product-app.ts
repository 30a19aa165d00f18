import type { Express } from "express";
import { createProductApp } from "../../product/app.ts";
import type { ProductContext } from "../../product/product-context.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { createLogger } from "../../lib/logger.ts";
import { freshDatabases, type FreshDatabases } from "./databases.ts";

export const TEST_SECURITY = { loginMaxFailures: 5, loginWindowSeconds: 60, lockoutSeconds: 300, loginRateLimitPerMinute: 10_000 };

/** The product app in this process on a fresh, migrated product database of the test cluster. */
export async function startProductApp(): Promise<{ app: Express; ctx: ProductContext; dbs: FreshDatabases; stop(): Promise<void> }> {
  const dbs = await freshDatabases({ migrated: true });
  const sequelize = openSequelize(clientConfig(dbs.server, dbs.product), { poolMax: 60 });
  const app = createProductApp({
    sequelize,
    logger: createLogger("test-product", { level: process.env.PLUM_TEST_LOG_LEVEL ?? "silent" }),
    slot: "production",
    sessionKey: Buffer.alloc(32, 7),
    secureCookies: true,
    security: TEST_SECURITY,
    sessionHours: 12,
  });
  return {
    app,
    ctx: app.productContext,
    dbs,
    async stop() {
      await sequelize.close();
      await dbs.drop();
    },
  };
}
