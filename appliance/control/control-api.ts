import { timingSafeEqual } from "node:crypto";
import express, { type Express, type NextFunction, type Request, type Response, type Router } from "express";
import { createBaseApp } from "../../lib/http/base-app.ts";
import type { Logger } from "../../lib/logger.ts";
import type { BackupJobs } from "../../backup/jobs/backup-jobs.ts";
import type { BackupOperations } from "../../backup/jobs/backup-operations.ts";
import { jobRequestSchema } from "../../backup/jobs/backup-requests.ts";
import { startAuditedJob } from "../audit/backup-job-audit.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import { upgradeControl, type ConsoleUpgrades } from "./upgrade-control.ts";
import type { ReleaseStore } from "../releases/release-store.ts";
import type { ReloadOutcome } from "../config-reload.ts";
import type { RestartOutcome } from "../agent-restart.ts";
import { agentControl, configControl } from "./config-control.ts";
import { releaseControl } from "./release-control.ts";
import type { StatusReport } from "../status/status-report.ts";
import { controlRoute } from "./control-route.ts";

/** The actor `plumctl` acts as through the control API (whoever holds the host's control token). */
export const CONTROL_ACTOR = "cli";

function authorised(req: Request, token: string): boolean {
  const given = /^Bearer\s+(\S+)$/i.exec(req.get("authorization") ?? "")?.[1] ?? "";
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The agent's control API for `plumctl` on this host, served on its own listener (createControlApp): start backup
 * jobs and follow them. Authenticated by the control token in PLUM_HOME/secrets (0600): holding it means being root here.
 * Answers are NDJSON: the job, its progress lines, then the finished job.
 */
export function controlApi(deps: {
  token: string;
  jobs: BackupJobs;
  operations: BackupOperations;
  audit: AuditLog;
  upgrades?: ConsoleUpgrades & { releases: ReleaseStore };
  reload?: () => Promise<ReloadOutcome>;
  /** `plumctl status`: read-only. */
  status?: () => Promise<StatusReport>;
  restart?: (opts: { stopOnly?: boolean }) => Promise<RestartOutcome>;
}): Router {
  const router = express.Router();
  router.use(express.json({ limit: "16kb" }));
  router.use((req: Request, res: Response, next: NextFunction) => {
    if (!authorised(req, deps.token))
      return res.status(401).json({ error: "a valid control token is needed (plumctl reads it from PLUM_HOME/secrets/control-token)" });
    next();
  });

  router.post("/jobs", async (req, res) => {
    const parsed = jobRequestSchema.safeParse(req.body ?? {});
    if (!parsed.success) return res.status(400).json({ error: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
    const { job } = await startAuditedJob(deps, parsed.data, CONTROL_ACTOR);
    res.status(202).type("application/x-ndjson");
    const write = (o: unknown) => res.write(JSON.stringify(o) + "\n");
    write({ type: "job", job });
    const stop = deps.jobs.follow(job.id, (e) => {
      write(e);
      if (e.type === "done") res.end();
    });
    res.on("close", stop);
  });

  router.get("/jobs", (_req, res) => {
    res.json(deps.jobs.list());
  });
  if (deps.upgrades) router.use(upgradeControl(deps.upgrades, CONTROL_ACTOR));
  if (deps.upgrades) router.use(releaseControl({ upgrades: deps.upgrades, audit: deps.audit }, CONTROL_ACTOR));
  if (deps.reload) router.use(configControl(deps.reload));
  const status = deps.status;
  if (status)
    router.get(
      "/status",
      controlRoute(() => status()),
    );
  if (deps.restart) router.use(agentControl(deps.restart));
  return router;
}

/**
 * The control listener's app: the control API under /control and nothing else (no console pages, sessions or
 * static files). The agent serves it on a Unix socket of its own (agent-parts.ts listenControl).
 */
export function createControlApp(router: Router, logger: Logger): Express {
  const app = createBaseApp(logger);
  app.use("/control", router);
  app.use((req, res) => res.status(404).json({ error: `the control API has no ${req.method} ${req.path}` }));
  return app;
}
