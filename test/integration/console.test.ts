import { expect } from "chai";
import request from "supertest";
import type { Express } from "express";
import type { Agent } from "../../appliance/agent.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { WebClient } from "../support/web-client.ts";
import type { FreshDatabases } from "../support/databases.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { plumctl } from "../support/plumctl.ts";

interface RouteInfo {
  method: string;
  path: string;
}

/** Every route the console app serves, read from Express's own router (nested routers included). */
function routesOf(app: Express): RouteInfo[] {
  const out: RouteInfo[] = [];
  type Layer = { route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: Layer[] } };
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) for (const method of Object.keys(layer.route.methods)) out.push({ method: method.toUpperCase(), path: layer.route.path });
      else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out;
}

const STRONG = "correct horse battery staple";
/** The password every other test user chooses at first sign-in. */
const OWN = "violet tram window lantern";

describe("ops console", function () {
  let agent: Agent;
  let dbs: FreshDatabases;
  let stop: () => Promise<void>;
  let admin: WebClient;

  /** Create a user through the console as the admin, then sign them in and set their own password. */
  async function userWithRole(username: string, role: string): Promise<WebClient> {
    const created = await admin.post("/users", { username, role }, await admin.csrfFrom("/users"));
    expect(created.status, created.text).to.equal(201);
    const oneTime = /data-testid="one-time-password"><code>([^<]+)</.exec(created.text)![1];
    const client = new WebClient(agent.consoleApp);
    expect((await client.signIn(username, oneTime)).headers.location).to.equal("/account/password");
    expect((await client.changePassword(oneTime, OWN)).status).to.equal(303);
    return client;
  }

  before(async () => {
    ({ agent, dbs, stop } = await startInProcessAgent((config) => (config.security.loginRateLimitPerMinute = 1000)));
    admin = new WebClient(agent.consoleApp);
  });
  after(() => stop());

  it("first start: signs the admin in with the one-time password and insists it is changed", async () => {
    expect(agent.firstAdmin?.username).to.equal("admin");
    const signIn = await admin.signIn("admin", agent.firstAdmin!.oneTimePassword);
    expect(signIn.status).to.equal(303);
    expect(signIn.headers.location).to.equal("/account/password");
    expect((await admin.get("/")).headers.location).to.equal("/account/password");
    const usersPost = await admin.post("/users", { username: "early", role: "auditor" }, await admin.csrfFrom("/account/password"));
    expect(usersPost.status).to.equal(403);
    expect(usersPost.text).to.include("Change your one-time password before doing anything else.");

    const weak = await admin.changePassword(agent.firstAdmin!.oneTimePassword, "short");
    expect(weak.status).to.equal(400);
    expect(weak.text).to.include("must be at least 12 characters");

    const changed = await admin.changePassword(agent.firstAdmin!.oneTimePassword, STRONG);
    expect(changed.status).to.equal(303);
    const dashboard = await admin.get("/?notice=password-changed");
    expect(dashboard.status).to.equal(200);
    expect(dashboard.text).to.include("Your password was changed.");
    expect(dashboard.text).to.include(`data-testid="running-version">${APP_VERSION}<`);
    expect(dashboard.text).to.include('data-testid="product-health">Healthy<');
    expect(dashboard.text).to.include("PostgreSQL 15.");
    expect(dashboard.text).to.include("production@" + APP_VERSION);
  });

  it("sets the session cookie HttpOnly, Secure and SameSite=Strict", async () => {
    const client = new WebClient(agent.consoleApp);
    const res = await client.signIn("admin", STRONG);
    const cookie = (res.headers["set-cookie"] as unknown as string[]).find((c) => c.startsWith("plum_ops_session="))!;
    expect(cookie)
      .to.match(/; HttpOnly/)
      .and.match(/; Secure/)
      .and.match(/; SameSite=Strict/)
      .and.match(/; Path=\//);
  });

  it("refuses a form without a CSRF token, or with another session's, and changes nothing", async () => {
    const noToken = await admin.post("/users", { username: "csrf-victim", role: "admin" });
    expect(noToken.status).to.equal(403);
    expect(noToken.text).to.include("missing or wrong CSRF token");

    const other = new WebClient(agent.consoleApp);
    await other.signIn("admin", STRONG);
    const foreign = await admin.post("/users", { username: "csrf-victim", role: "admin" }, await other.csrfFrom("/users"));
    expect(foreign.status).to.equal(403);

    const anonymousLogin = await new WebClient(agent.consoleApp).post("/login", { username: "admin", password: STRONG });
    expect(anonymousLogin.status).to.equal(403);

    const users = await admin.get("/users");
    expect(users.text).not.to.include("csrf-victim");
  });

  it("refuses the 6th wrong password in a minute, even when it is right, and audits it", async () => {
    await userWithRole("locky", "operator");
    const client = new WebClient(agent.consoleApp);
    for (let i = 1; i <= 5; i++) {
      const res = await client.signIn("locky", `wrong password ${i}`);
      expect(res.status, `attempt ${i}`).to.equal(401);
      expect(res.text).to.include("Wrong username or password.");
    }
    const sixth = await client.signIn("locky", OWN);
    expect(sixth.status).to.equal(429);
    expect(sixth.headers["retry-after"]).to.match(/^\d+$/);
    expect(sixth.text).to.match(/Too many failed sign-ins for this account\. Try again in \d+ seconds/);
    const actions = (await agent.audit.list({ actor: "user:locky", limit: 20 })).map((r) => r.action);
    expect(actions.filter((a) => a === "login.failure")).to.have.length(5);
    expect(actions).to.include("login.locked");
  });

  it("gives an auditor 403 on every state-changing route, and changes nothing", async () => {
    const auditor = await userWithRole("audrey", "auditor");
    const routes = routesOf(agent.consoleApp).filter((r) => !["GET", "HEAD", "OPTIONS"].includes(r.method));
    // Self-service routes every signed-in user has: their own session and password.
    const selfService = ["POST /login", "POST /logout", "POST /account/password"];
    const changing = routes.filter((r) => !selfService.includes(`${r.method} ${r.path}`));
    expect(changing.map((r) => `${r.method} ${r.path}`)).to.include.members(["POST /users", "POST /users/:id", "POST /users/:id/reset-password"]);
    const usersBefore = (await admin.get("/users")).text.match(/<tr>/g)?.length;
    const adminId = "1";
    for (const route of changing) {
      const path = route.path.replace(":id", adminId);
      const res = await auditor.post(path, { username: "sneaky", role: "admin", disabled: "true" }, await auditor.csrfFrom("/"));
      expect(res.status, `${route.method} ${path}`).to.equal(403);
      expect(res.text).to.include("Your role (auditor) may not");
    }
    expect((await admin.get("/users")).text.match(/<tr>/g)?.length).to.equal(usersBefore);
    expect((await admin.get("/")).status).to.equal(200); // the admin was neither disabled nor reset
    const denied = await agent.audit.list({ actor: "user:audrey", action: "access.denied" });
    expect(denied.length).to.equal(changing.length);
  });

  it("lets an auditor read the dashboard and the audit log and export it, but not see users", async () => {
    const auditor = await userWithRole("aud2", "auditor");
    expect((await auditor.get("/")).status).to.equal(200);
    const page = await auditor.get("/audit?action=login");
    expect(page.status).to.equal(200);
    expect(page.text).to.include("login.success");
    const verify = await auditor.get("/audit?verify=1");
    expect(verify.text).to.match(/The chain verifies: \d+ rows/);
    const csv = await auditor.get("/audit/export.csv?action=user.create");
    expect(csv.status).to.equal(200);
    expect(csv.headers["content-type"]).to.match(/^text\/csv/);
    expect(csv.text.split("\n")[0]).to.equal("id,at,actor,action,target,outcome,detail,prev_hash,hash");
    expect(csv.text).to.include("user:aud2");
    expect((await auditor.get("/users")).status).to.equal(403);
  });

  it("lets an operator in but keeps user management to admins", async () => {
    const operator = await userWithRole("opal", "operator");
    expect((await operator.get("/")).status).to.equal(200);
    expect((await operator.get("/users")).status).to.equal(403);
    const res = await operator.post("/users", { username: "x2", role: "admin" }, await operator.csrfFrom("/"));
    expect(res.status).to.equal(403);
  });

  it("keeps the last active admin an admin", async () => {
    const res = await admin.post("/users/1", { role: "operator" }, await admin.csrfFrom("/users"));
    expect(res.status).to.equal(400);
    expect(res.text).to.include("this is the last active admin: make another admin first");
  });

  it("disables a user: their sessions end and they cannot sign in", async () => {
    const victim = await userWithRole("gone", "operator");
    const users = await admin.get("/users");
    const id = new RegExp(`<td>gone</td>[\\s\\S]*?action="/users/(\\d+)"`).exec(users.text)![1];
    expect((await admin.post(`/users/${id}`, { disabled: "true" }, await admin.csrfFrom("/users"))).status).to.equal(303);
    expect((await victim.get("/")).headers.location).to.match(/^\/login/);
    const again = await new WebClient(agent.consoleApp).signIn("gone", OWN);
    expect(again.status).to.equal(401);
  });

  it("serves pages under a strict Content-Security-Policy with no inline script", async () => {
    const res = await admin.get("/login");
    const csp = res.headers["content-security-policy"];
    expect(csp).to.include("default-src 'none'").and.include("script-src 'self'").and.include("frame-ancestors 'none'");
    expect(csp).not.to.include("unsafe-inline");
    expect(res.text).not.to.match(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it("records sign-ins and user changes in the audit log, and the chain verifies", async () => {
    const actions = (await agent.audit.list({ limit: 500 })).map((r) => r.action);
    expect(actions).to.include.members(["agent.start", "instance.start", "login.success", "login.failure", "password.change", "user.create", "user.disable"]);
    expect((await agent.audit.verify()).ok).to.equal(true);
  });

  it("`plumctl user reset-password` gives a locked-out user a new one-time password from the host", async () => {
    const home = tempHome();
    try {
      const res = await plumctl(["user", "reset-password", "locky"], { ...dbs.env, PLUM_HOME: home });
      expect(res.code, res.stderr).to.equal(0);
      const password = /one-time password for locky: (\S+)/.exec(res.stdout)![1];
      const signIn = await new WebClient(agent.consoleApp).signIn("locky", password);
      expect(signIn.status).to.equal(303);
      expect(signIn.headers.location).to.equal("/account/password");
      const [row] = await agent.audit.list({ action: "user.password-reset" });
      expect(row).to.include({ actor: "user:cli", target: "user:locky" });
      const unknown = await plumctl(["user", "reset-password", "nobody"], { ...dbs.env, PLUM_HOME: home });
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.include('error: there is no console user "nobody"');
    } finally {
      removeHome(home);
    }
  });

  it("keeps the control API (plumctl's) off the console and to holders of the control token, whatever the session", async () => {
    const auditor = await userWithRole("aud3", "auditor");
    // The console does not serve it at all: a signed-in POST there is a console form without its CSRF token.
    const onConsole = await request(agent.consoleApp).post("/control/jobs").set("Cookie", auditor.cookieHeader()).send({ kind: "backup" });
    expect(onConsole.status).to.equal(403);
    expect(onConsole.text).to.include("missing or wrong CSRF token");
    const res = await request(agent.controlApp).post("/control/jobs").set("Cookie", auditor.cookieHeader()).send({ kind: "backup" });
    expect(res.status).to.equal(401);
    expect(res.body.error).to.equal("a valid control token is needed (plumctl reads it from PLUM_HOME/secrets/control-token)");
    const wrong = await request(agent.controlApp).post("/control/jobs").set("Authorization", "Bearer not-the-token").send({ kind: "backup" });
    expect(wrong.status).to.equal(401);
  });
});
