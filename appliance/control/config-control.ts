import express, { type Router } from "express";
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
