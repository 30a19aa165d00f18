import { expect } from "chai";
import express from "express";
import path from "node:path";
import { Registry } from "prom-client";
import request from "supertest";
import { createLogger } from "../../lib/logger.ts";
import { createViewEngine, WEB_ROOT } from "../../lib/http/views.ts";
import { sleep, waitFor } from "../../lib/wait.ts";
import type { AuditEvent } from "../../appliance/audit/audit-log.ts";
import { dashboardRoutes } from "../../appliance/console/routes/dashboard-routes.ts";
import type { ApplianceStatus } from "../../appliance/console/status.ts";
import { Production } from "../../appliance/production.ts";
import { EdgeProxy } from "../../appliance/proxy/edge-proxy.ts";
import type { ReleaseRef } from "../../appliance/runtimes/runtime.ts";
import { HttpRuntime } from "../support/http-runtime.ts";

const ref = (version: string): ReleaseRef => ({ version, dir: "/nowhere", command: ["plumctl"] });

/** Production over real HTTP instances and the real edge proxy: start-ready, warm, switch, drain, detach, supervise. */
describe("Production: what serves the production slot", function () {
  this.timeout(30_000);
  let runtime: HttpRuntime;
  let proxy: EdgeProxy;
  let proxyUrl: string;
  let audit: AuditEvent[];
  let served: string;
  let production: Production;

  beforeEach(async () => {
    runtime = new HttpRuntime();
    const log = createLogger("production-test", { level: "silent" });
    proxy = new EdgeProxy({ log, registry: new Registry() });
    proxyUrl = `http://127.0.0.1:${await proxy.listen(0, "127.0.0.1")}`;
    audit = [];
    served = "1.0.0";
    production = new Production({
      runtime,
      proxy,
      audit: { append: async (e) => void audit.push(e) },
      log,
      instanceEnv: (database) => ({ DATABASE: database }),
      productDatabase: "plum",
      healthTimeoutMs: 800,
      servedRelease: async () => ref(served),
    });
  });
  afterEach(async () => {
    production.close();
    for (const i of runtime.list()) await runtime.stop(i.id);
    await proxy.close();
  });

  const answering = async () => ((await (await fetch(`${proxyUrl}/version`)).json()) as { version: string }).version;

  it("starts the served release ready and gives it the traffic; a switch keeps the old warm or stops it", async () => {
    await production.start();
    expect(await answering()).to.equal("1.0.0");
    const promoted = await production.switchTo(ref("2.0.0"), { keepPrevious: true });
    expect(promoted).to.include({ instance: "production@2.0.0", previous: "production@1.0.0" });
    expect(promoted.switchMs).to.be.lessThan(50);
    expect(await answering()).to.equal("2.0.0");
    expect(runtime.list().map((i) => i.id)).to.have.members(["production@1.0.0", "production@2.0.0"]);

    const back = await production.switchTo(ref("1.0.0"), { brief: true });
    expect(back).to.include({ instance: "production@1.0.0", previous: "production@2.0.0" });
    expect(await answering()).to.equal("1.0.0");
    expect(runtime.list().map((i) => i.id)).to.deep.equal(["production@1.0.0"]);
    expect(
      runtime.started.filter((id) => id === "production@1.0.0"),
      "the warm instance was reused",
    ).to.have.length(1);
    expect(audit.filter((e) => e.action === "production.switch").map((e) => e.target)).to.deep.equal([
      "production@1.0.0",
      "production@2.0.0",
      "production@1.0.0",
    ]);
    const again = await production.switchTo(ref("1.0.0"));
    expect([again.instance, again.previous]).to.deep.equal(["production@1.0.0", undefined]);
  });

  it("a release that never becomes ready is stopped again: what served keeps its traffic", async () => {
    await production.start();
    runtime.notReady.add("2.0.0");
    const err = await production.switchTo(ref("2.0.0")).catch((e: Error) => e);
    expect((err as Error).message).to.match(/^timed out after 1 s waiting for instance production@2\.0\.0 to become ready/);
    expect(await answering()).to.equal("1.0.0");
    expect(runtime.list().map((i) => i.id)).to.deep.equal(["production@1.0.0"]);
    expect(audit.find((e) => e.action === "instance.start" && e.outcome === "failure")?.target).to.equal("production@2.0.0");
  });

  it("detaches for a restore (503 with the reason) and attaches the served release again", async () => {
    await production.start();
    await production.detach("a restore is in progress");
    const res = await fetch(`${proxyUrl}/version`);
    expect(res.status).to.equal(503);
    expect(((await res.json()) as { error: string }).error).to.equal("a restore is in progress; retry shortly");
    expect(runtime.list()).to.deep.equal([]);
    expect(await production.status()).to.deep.equal({ healthy: false, detail: "a restore is in progress", detached: "a restore is in progress" });
    await production.attach();
    expect(await answering()).to.equal("1.0.0");
    expect(await production.status()).to.deep.equal({ version: "1.0.0", instance: "production@1.0.0", healthy: true, detail: "ready" });
  });

  it("restarts a production instance that died, and never one a rollback switched away from", async () => {
    production.supervise();
    await production.start();
    const before = runtime.list()[0].url;
    await runtime.kill("production@1.0.0");
    await waitFor("the restarted instance to serve", async () => (proxy.current?.url !== before ? true : undefined), {
      timeoutMs: 5000,
    });
    expect(await answering()).to.equal("1.0.0");
    expect(audit.filter((e) => e.action === "instance.exit").map((e) => e.target)).to.deep.equal(["production@1.0.0"]);

    served = "2.0.0"; // the pointer moved on (a rollback or promote is switching) while 1.0.0 still has the traffic
    await runtime.kill("production@1.0.0");
    await sleep(1500); // past the second restart's back-off
    expect(runtime.list()).to.deep.equal([]);
  });
});

describe("dashboard: production's version, and the agent's, labelled", () => {
  it("shows the release that serves production as the running version, the agent's apart", async () => {
    const status: ApplianceStatus = {
      agentVersion: "0.1.0",
      startedAt: new Date(),
      production: { version: "0.2.0", instance: "production@0.2.0", healthy: true, detail: "ready" },
      database: { mode: "external", host: "db", port: 5432, serverVersion: "15.8", productDatabase: "plum", opsDatabase: "plum_ops" },
      proxy: { listening: "http://127.0.0.1:8080", activeInstance: "production@0.2.0" },
      instances: [],
    };
    const app = express();
    app.engine("hbs", createViewEngine());
    app.set("view engine", "hbs");
    app.set("views", path.join(WEB_ROOT, "pages"));
    app.use((_req, res, next) => {
      res.locals.signedIn = { actor: { id: 1, username: "audrey", role: "auditor" } };
      next();
    });
    const router = express.Router();
    dashboardRoutes(router, async () => status);
    app.use(router);
    const page = await request(app).get("/");
    expect(page.status, page.text).to.equal(200);
    expect(page.text).to.include('data-testid="running-version">0.2.0<');
    expect(page.text).to.include('Agent <span data-testid="agent-version">0.1.0</span>');
    expect(page.text).to.include('data-testid="product-health">Healthy<');

    status.production = { healthy: false, detail: "a restore is in progress", detached: "a restore is in progress" };
    const detached = await request(app).get("/");
    expect(detached.text).to.include('data-testid="running-version">none serving<');
    expect(detached.text).to.include("a restore is in progress");
  });
});
