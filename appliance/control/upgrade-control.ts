import express, { type Router } from "express";
import { z } from "zod";
import type { AgentUpgrader } from "../agent-upgrade/agent-upgrader.ts";
import type { UpgradeManager } from "../upgrade/upgrade-manager.ts";
import { controlRoute } from "./control-route.ts";

/** What the console and the control API need of the upgrade side of the agent. */
export interface ConsoleUpgrades {
  manager: UpgradeManager;
  /** The release the agent was installed from (production before any upgrade). */
  installed: string;
  /** The upgrade of the agent itself, for a release that carries one. */
  agent?: AgentUpgrader;
}

const startSchema = z.strictObject({
  version: z.string().regex(/^\d+\.\d+\.\d+$/, "must be X.Y.Z"),
  promotion: z.enum(["now", "window", "approval"]).optional(),
  /** Upgrade the product with a release that also carries an agent (staged), not the agent. */
  product: z.boolean().optional(),
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
  router.get(
    "/upgrades",
    controlRoute(() => upgrades.manager.status()),
  );
  router.post(
    "/upgrades",
    controlRoute(async (body) => {
      const input = startSchema.parse(body);
      // A bundle that carries a new agent replaces the agent (which then serves its product as the installed release).
      if (!input.product && upgrades.agent?.carriesAgent(input.version)) return upgrades.agent.start({ version: input.version, actor });
      return upgrades.manager.start({ version: input.version, promotion: input.promotion, actor, installed: upgrades.installed });
    }, 202),
  );
  router.post(
    "/upgrades/approve",
    controlRoute(() => upgrades.manager.approve(actor)),
  );
  router.post(
    "/upgrades/abort",
    controlRoute(() => upgrades.manager.abort(actor)),
  );
  router.post(
    "/upgrades/confirm-restore",
    controlRoute(() => upgrades.manager.confirmRestore(actor)),
  );
  router.post(
    "/rollback",
    controlRoute(async (body) => upgrades.manager.rollback({ to: rollbackSchema.parse(body).to, actor, installed: upgrades.installed }), 202),
  );
  return router;
}
