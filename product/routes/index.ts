import type { Router } from "express";
import type { ProductContext } from "../product-context.ts";
import { manageRoutes } from "./manage-routes.ts";
import { merchantAdminRoutes } from "./merchant-admin-routes.ts";
import { merchantRoutes } from "./merchant-routes.ts";
import { participantRoutes } from "./participant-routes.ts";
import { payoutRoutes } from "./payout-routes.ts";
import { posApiRoutes } from "./pos-api-routes.ts";
import { storeRoutes } from "./store-routes.ts";
import { voucherRoutes } from "./voucher-routes.ts";

/** A group of product routes: registers its handlers on the router it is given. */
export type ProductRoutes = (router: Router, ctx: ProductContext) => void;

/** Machine-to-machine routes under /api (merchant POS): API-key auth, no cookies, no CSRF. */
export const apiRoutes: ProductRoutes[] = [posApiRoutes];

/** Pages anyone may open without signing in (a voucher's shareable URL). */
export const publicRoutes: ProductRoutes[] = [voucherRoutes];

/** Pages and forms for signed-in product users; each handler authorizes by role. */
export const signedInRoutes: ProductRoutes[] = [manageRoutes, participantRoutes, merchantAdminRoutes, payoutRoutes, storeRoutes, merchantRoutes];
