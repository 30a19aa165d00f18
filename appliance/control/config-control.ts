import express, { type Router } from "express";
import { z } from "zod";
import type { RestartOutcome } from "../agent-restart.ts";
import type { ReloadOutcome } from "../config-reload.ts";
import { controlRoute } from "./control-route.ts";

/** `plumctl config reload`: the agent reads plum.yaml again and answers which changed keys it applied and which need a restart. */
export function configControl(reload: () => Promise<ReloadOutcome>): Router {
  const router = express.Router();
  router.post(
    "/config/reload",
    controlRoute(() => reload()),
  );
  return router;
}

const restartSchema = z.strictObject({ stopOnly: z.boolean().optional() });

/** `plumctl agent restart`: the agent restarts with a handover (instances and PostgreSQL keep serving). */
export function agentControl(restart: (opts: { stopOnly?: boolean }) => Promise<RestartOutcome>): Router {
  const router = express.Router();
  router.post(
    "/agent/restart",
    controlRoute((body) => restart(restartSchema.parse(body)), 202),
  );
  return router;
}
