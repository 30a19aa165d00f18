import type { Sequelize } from "sequelize";
import { defineProductModels } from "./models/index.ts";
import type { ProductContext } from "./product-context.ts";

/** A product context over a connection of its own, for work done outside a product instance (CLI, suites). */
export function standaloneContext(sequelize: Sequelize): ProductContext {
  const models = defineProductModels(sequelize);
  const security = { loginMaxFailures: 5, loginWindowSeconds: 60, lockoutSeconds: 300, loginRateLimitPerMinute: 30 };
  return { sequelize, models, auth: { sequelize, models: models.auth, audit: models.events, security, sessionHours: 1 } };
}
