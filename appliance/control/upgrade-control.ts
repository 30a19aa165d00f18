import express, { type Router } from "express";
import { z } from "zod";
import { PlumError } from "../../lib/errors.ts";
import type { UpgradeManager } from "../upgrade/upgrade-manager.ts";

/** What the console and the control API need of the upgrade side of the agent. */
export interface ConsoleUpgrades {
  manager: UpgradeManager;
  /** The release the agent was installed from (production before any upgrade). */
  installed: string;
}

const startSchema = z.strictObject({
  version: z.string().regex(/^\d+\.\d+\.\d+$/, "must be X.Y.Z"),
  promotion: z.enum(["now", "window", "approval"]).optional(),
});
const rollbackSchema = z.strictObject({
  to: z
    .string()
    .regex(/^\d+\.\d+\.\d+$/, "must be X.Y.Z")
    .optional(),
});

/**
 * The upgrade routes of the control API (bearer token, mounted under /control by the agent): what
 * `plumctl upgrade …` and `plumctl rollback` call. The host's root acts as `actor`.
 */
export function upgradeControl(upgrades: ConsoleUpgrades, actor: string): Router {
  const router = express.Router();
  const refusal = (err: unknown) => ({ error: (err as Error).message, hint: err instanceof PlumError ? err.hint : undefined });
  const run =
    (work: (body: unknown) => Promise<unknown>, status = 200): express.RequestHandler =>
    async (req, res) => {
      try {
        res.status(status).json(await work(req.body ?? {}));
      } catch (err) {
        res
          .status(err instanceof PlumError || err instanceof z.ZodError ? 409 : 500)
          .json(err instanceof z.ZodError ? { error: err.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") } : refusal(err));
      }
    };
  router.get(
    "/upgrades",
    run(() => upgrades.manager.status()),
  );
  router.post(
    "/upgrades",
    run(async (body) => {
      const input = startSchema.parse(body);
      return upgrades.manager.start({ version: input.version, promotion: input.promotion, actor, installed: upgrades.installed });
    }, 202),
  );
  router.post(
    "/upgrades/approve",
    run(() => upgrades.manager.approve(actor)),
  );
  router.post(
    "/upgrades/abort",
    run(() => upgrades.manager.abort(actor)),
  );
  router.post(
    "/upgrades/confirm-restore",
    run(() => upgrades.manager.confirmRestore(actor)),
  );
  router.post(
    "/rollback",
    run(async (body) => upgrades.manager.rollback({ to: rollbackSchema.parse(body).to, actor, installed: upgrades.installed }), 202),
  );
  return router;
}
