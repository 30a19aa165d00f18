import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { APP_VERSION } from "../../lib/version.ts";
import { waitFor } from "../../lib/wait.ts";
import { alive, removeHome, startAgentProcess, tempHome, type AgentProcess } from "../support/agent-process.ts";
import { plumctl } from "../support/plumctl.ts";
import { freePort } from "../support/ports.ts";

/** `npm start` for real: embedded PostgreSQL, the agent, a product instance, the edge proxy and the console. */
describe("npm start (embedded PostgreSQL): start, Ctrl-C, restart, kill -9", function () {
  this.timeout(300_000);
  let home: string;
  let env: Record<string, string>;
  let running: AgentProcess | undefined;

  before(async () => {
    home = tempHome();
    env = { PLUM_PG_PORT: String(await freePort()) };
  });
  after(async () => {
    await running?.stop("SIGINT").catch(() => undefined);
    removeHome(home);
  });

  const postmasterPid = () => {
    const file = path.join(home, "pgdata", "postmaster.pid");
    return existsSync(file) ? Number(readFileSync(file, "utf8").split("\n")[0]) : undefined;
  };
  const instancePids = () =>
    readdirSync(path.join(home, "run", "instances")).map((f) => JSON.parse(readFileSync(path.join(home, "run", "instances", f), "utf8")).pid as number);

  it("first start: serves the product through the proxy and the console, prints a one-time password", async () => {
    running = await startAgentProcess({ home, env, via: "npm-start" });
    expect(running.oneTimePassword).to.match(/^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/);
    expect(running.output()).to.include(`Plum appliance ${APP_VERSION} is running`).and.include("embedded PostgreSQL 15.");

    const health = await fetch(`${running.proxyUrl}/healthz`);
    expect(health.status).to.equal(200);
    expect(((await health.json()) as { status: string }).status).to.equal("ok");
    expect(await (await fetch(`${running.proxyUrl}/version`)).json()).to.include({ name: "plum", version: APP_VERSION, slot: "production" });
    expect(((await (await fetch(`${running.proxyUrl}/readyz`)).json()) as { status: string }).status).to.equal("ready");
    expect(await (await fetch(`${running.proxyUrl}/metrics`)).text()).to.include("plum_http_requests_total");

    const login = await fetch(`${running.consoleUrl}/login`);
    expect(login.status).to.equal(200);
    expect(await login.text()).to.include("Sign in");
    const agentMetrics = await (await fetch(`${running.consoleUrl}/metrics`)).text();
    expect(agentMetrics).to.match(/plum_proxy_requests_total\{status="200",version="[^"]+"\} [1-9]/);

    for (const name of readdirSync(path.join(home, "secrets"))) expect(statSync(path.join(home, "secrets", name)).mode & 0o777, name).to.equal(0o600);
    expect(readFileSync(path.join(home, "plum.yaml"), "utf8")).to.include("http:");
    expect(running.output(), "no secret in the logs").not.to.include(readFileSync(path.join(home, "secrets", "postgres-password"), "utf8").trim());
  });

  it("Ctrl-C stops the instance and PostgreSQL cleanly", async () => {
    const instances = instancePids();
    const postgres = postmasterPid()!;
    expect(instances).to.have.length(1);
    expect(alive(postgres)).to.equal(true);
    await running!.stop("SIGINT");
    running = undefined;
    expect(alive(instances[0])).to.equal(false);
    expect(alive(postgres)).to.equal(false);
    expect(postmasterPid()).to.equal(undefined);
    expect(existsSync(path.join(home, "run", "agent.pid"))).to.equal(false);
  });

  it("a second start reuses the data: no new admin password, the audit chain goes on", async () => {
    running = await startAgentProcess({ home, env, via: "npm-start" });
    expect(running.oneTimePassword).to.equal(undefined);
    expect((await fetch(`${running.proxyUrl}/healthz`)).status).to.equal(200);
    const verify = await plumctl(["audit", "verify", "--json"], { ...env, PLUM_HOME: home });
    expect(verify.code, verify.stderr).to.equal(0);
    const verdict = JSON.parse(verify.stdout) as { ok: boolean; checked: number };
    expect(verdict.ok).to.equal(true);
    expect(verdict.checked).to.be.greaterThan(5); // two agent starts, a stop, instance events, the first admin
  });

  it("after kill -9 of the agent, the next npm start recovers without manual steps", async () => {
    const agentPid = running!.agentPid();
    const postgres = postmasterPid()!;
    const [instance] = instancePids();
    process.kill(agentPid, "SIGKILL");
    await running!.exited;
    running = undefined;
    // What a crash leaves behind: a PostgreSQL server still up with its lock file, the agent's pid file.
    expect(alive(postgres)).to.equal(true);
    expect(existsSync(path.join(home, "run", "agent.pid"))).to.equal(true);
    // The orphaned instance notices its agent is gone and stops by itself.
    await waitFor("the orphaned instance to exit", async () => (alive(instance) ? undefined : true), { timeoutMs: 30_000 });

    running = await startAgentProcess({ home, env, via: "npm-start" });
    expect(running.output()).to.include("a PostgreSQL server from an earlier run is still up; stopping it");
    expect((await fetch(`${running.proxyUrl}/healthz`)).status).to.equal(200);
    expect(alive(postgres)).to.equal(false);
    expect(instancePids()).to.have.length(1);
    const verify = await plumctl(["audit", "verify"], { ...env, PLUM_HOME: home });
    expect(verify.code, verify.stdout + verify.stderr).to.equal(0);
  });
});
