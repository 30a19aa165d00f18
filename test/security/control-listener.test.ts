import { expect } from "chai";
import { lstatSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import type { Agent } from "../../appliance/agent.ts";
import { homeLayout } from "../../lib/paths.ts";
import type { FreshDatabases } from "../support/databases.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { plumctl } from "../support/plumctl.ts";

/** A GET over the control socket, as any local process could try it. */
function overSocket(socketPath: string, route: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: route, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
    });
    req.once("error", reject);
    req.end();
  });
}

/**
 * The control API (what `plumctl` drives: jobs, restores, upgrades, config reloads) on a listener of its own,
 * a Unix socket only the agent's user can open, instead of the console's network port.
 */
describe("security: the control API's own listener", function () {
  this.timeout(180_000);
  let agent: Agent;
  let dbs: FreshDatabases;
  let stop: () => Promise<void>;
  let token: string;
  let runDir: string;

  before(async () => {
    ({ agent, dbs, stop } = await startInProcessAgent());
    const layout = homeLayout(agent.config.home);
    token = readFileSync(path.join(layout.secretsDir, "control-token"), "utf8").trim();
    runDir = layout.runDir;
  });
  after(async () => stop?.());

  it("the console's port does not answer the control API, even with the control token", async () => {
    for (const [method, route] of [
      ["GET", "/control/jobs"],
      ["GET", "/control/upgrades"],
      ["POST", "/control/config/reload"],
    ]) {
      const res = await fetch(new URL(route, agent.urls.console), {
        method,
        redirect: "manual",
        headers: { authorization: `Bearer ${token}`, accept: "application/json" },
      });
      // A console page's answer to a stranger (sign in first, or the CSRF refusal), never the control API's.
      if (method === "GET") {
        expect(res.status, `${method} ${route} on the console's port`).to.equal(303);
        expect(res.headers.get("location")).to.equal(`/login?next=${encodeURIComponent(route)}`);
      } else {
        expect(res.status, `${method} ${route} on the console's port`).to.equal(403);
        expect(await res.text()).to.include("missing or wrong CSRF token");
      }
    }
  });

  it("listens on PLUM_HOME/run/control.sock, a socket of mode 0600 owned by the agent's user, named in run/agent.json", async () => {
    const endpoint = JSON.parse(readFileSync(path.join(runDir, "agent.json"), "utf8"));
    const socket = path.join(runDir, "control.sock");
    expect(endpoint.control, "run/agent.json names the control listener").to.deep.equal({ socket });
    const st = lstatSync(socket);
    expect(st.isSocket(), "a Unix socket").to.equal(true);
    expect((st.mode & 0o777).toString(8)).to.equal("600");
    expect(st.uid).to.equal(process.getuid!());
    expect(JSON.stringify(endpoint)).not.to.include(token);
  });

  it("still asks for the bearer token on the socket", async () => {
    const socket = path.join(runDir, "control.sock");
    const without = await overSocket(socket, "/control/jobs");
    expect(without.status).to.equal(401);
    expect(JSON.parse(without.body).error).to.equal("a valid control token is needed (plumctl reads it from PLUM_HOME/secrets/control-token)");
    expect((await overSocket(socket, "/control/jobs", "not-the-token")).status).to.equal(401);
    const withToken = await overSocket(socket, "/control/jobs", token);
    expect(withToken.status).to.equal(200);
    expect(JSON.parse(withToken.body)).to.be.an("array");
    // Nothing but the control API on it: no console page, no /metrics.
    for (const route of ["/login", "/metrics", "/"]) expect((await overSocket(socket, route, token)).status, route).to.equal(404);
  });

  it("plumctl finds the agent through run/agent.json and drives it over the socket", async () => {
    const env = { PLUM_HOME: agent.config.home, ...dbs.env };
    const jobs = await plumctl(["backup", "jobs", "--json"], env);
    expect(jobs.code, jobs.stderr).to.equal(0);
    expect(JSON.parse(jobs.stdout)).to.be.an("array");
    const reload = await plumctl(["config", "reload", "--json"], env);
    expect(reload.code, reload.stderr).to.equal(0);
    expect(JSON.parse(reload.stdout)).to.have.property("applied");
  });
});
