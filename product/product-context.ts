import type { Sequelize } from "sequelize";
import type { AuthContext } from "../lib/http/auth/auth-context.ts";
import type { ProductModels } from "./models/index.ts";

/** What product commands and routes work with. */
export interface ProductContext {
  sequelize: Sequelize;
  models: ProductModels;
  /** Sign-in, sessions and passwords of product users (shared code, the product's own tables). */
  auth: AuthContext;
  /** The product's public base URL (for shareable voucher links and QR codes); else taken from the request. */
  publicUrl?: string;
  /** POS API requests allowed per minute and API key (default 6000: a busy merchant's tills, far too few to sweep for codes). */
  posRateLimitPerMinute?: number;
  /** Rows one CSV import takes (imports.maxRows; default 100,000). */
  importMaxRows?: number;
}

/** Who does a product command: a signed-in product user, or the system (imports, demo data, suites). */
export interface ProductActor {
  id: number;
  username: string;
  role: string;
}

export const SYSTEM_ACTOR: ProductActor = { id: 0, username: "system", role: "manager" };

export function actorLabel(actor: ProductActor): string {
  return actor.id === 0 ? actor.username : `user:${actor.username}`;
}
