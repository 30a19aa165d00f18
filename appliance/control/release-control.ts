import path from "node:path";
import express, { type Router } from "express";
import { z } from "zod";
import type { AuditLog } from "../audit/audit-log.ts";
import { releaseImporter } from "../releases/release-importer.ts";
import type { ReleaseStore } from "../releases/release-store.ts";
import { controlRoute } from "./control-route.ts";
import type { ConsoleUpgrades } from "./upgrade-control.ts";

const importSchema = z.strictObject({
  file: z.string().refine((f) => path.isAbsolute(f), "must be an absolute path on this host"),
});

/**
 * `plumctl release import` while the agent runs: the agent verifies the bundle with its own store and the
 * vendor key it has pinned, so what the CLI imports is what the agent's upgrade will accept.
 */
export function releaseControl(deps: { upgrades: ConsoleUpgrades & { releases: ReleaseStore }; audit: AuditLog }, actor: string): Router {
  const router = express.Router();
  router.post(
    "/releases/import",
    controlRoute(async (body) =>
      releaseImporter({
        store: deps.upgrades.releases,
        audit: deps.audit,
        actor,
        file: importSchema.parse(body).file,
        productionVersion: await deps.upgrades.manager.productionVersion(deps.upgrades.installed),
      }),
    ),
  );
  return router;
}
