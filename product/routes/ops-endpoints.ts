import type { Express } from "express";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Sequelize } from "sequelize";
import { APP_VERSION, PRODUCT_MIGRATIONS_DIR, expectedSchemaVersion } from "../../lib/version.ts";
import { MIGRATIONS_TABLE } from "../../lib/db/migrate.ts";
import type { Logger } from "../../lib/logger.ts";

/** /healthz, /readyz, /version and /metrics: what the agent, the proxy and monitoring ask an instance. */
export function opsEndpoints(app: Express, deps: { sequelize: Sequelize; slot: string; logger: Logger }): void {
  const expectedSchema = expectedSchemaVersion(PRODUCT_MIGRATIONS_DIR);
  const startedAt = Date.now();
  const registry = new Registry();
  registry.setDefaultLabels({ slot: deps.slot, version: APP_VERSION });
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: "plum_http_requests_total", help: "HTTP requests served", labelNames: ["method", "status"], registers: [registry] });
  const latency = new Histogram({
    name: "plum_http_request_duration_seconds",
    help: "HTTP request latency",
    labelNames: ["method"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  app.use((req, res, next) => {
    const end = latency.startTimer({ method: req.method });
    res.on("finish", () => {
      end();
      requests.inc({ method: req.method, status: String(res.statusCode) });
    });
    next();
  });

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok", uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) });
  });

  // Ready when this build's newest migration is applied. A newer schema (a release being promoted or soaking
  // on it) still counts: migrations only expand, so the previous release keeps serving on it.
  app.get("/readyz", async (_req, res) => {
    try {
      // One round trip on a table of a few rows: this is probed every second during a soak.
      const [rows] = await deps.sequelize.query(
        `select (select name from ${MIGRATIONS_TABLE} order by run_on desc, id desc limit 1) as applied, exists (select 1 from ${MIGRATIONS_TABLE} where name = :expected) as has`,
        { replacements: { expected: expectedSchema } },
      );
      const row = (rows as Array<{ applied: string | null; has: boolean }>)[0];
      const applied = row?.applied ?? "none";
      if (!row?.has) {
        res.status(503).json({ status: "schema-mismatch", error: "not ready: schema behind", expected: expectedSchema, applied });
        return;
      }
      res.json({ status: "ready", schemaVersion: applied, ...(applied !== expectedSchema ? { expected: expectedSchema, schemaAhead: true } : {}) });
    } catch (err) {
      // /readyz is public (the edge proxy forwards every path): the database's own words (host, role, database
      // names) go to the instance log, which the agent and a support bundle read, never to the answer.
      deps.logger.warn({ err: (err as Error).message }, "not ready: database unavailable");
      res.status(503).json({ status: "database-unreachable", error: "not ready: database unavailable" });
    }
  });

  app.get("/version", (_req, res) => {
    res.json({ name: "plum", version: APP_VERSION, schemaVersion: expectedSchema, slot: deps.slot });
  });

  app.get("/metrics", async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
}
