import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import pg from "pg";
import { Registry } from "prom-client";
import type { Sequelize } from "sequelize";
import request from "supertest";
import type { Agent } from "../../appliance/agent.ts";
import { EdgeProxy } from "../../appliance/proxy/edge-proxy.ts";
import { ConfigError, loadConfig } from "../../lib/config.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { createLogger } from "../../lib/logger.ts";
import { waitFor } from "../../lib/wait.ts";
import { createProductApp } from "../../product/app.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import type { FreshDatabases } from "../support/databases.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { TEST_SECURITY } from "../support/product-app.ts";
import { WebClient } from "../support/web-client.ts";

const silent = () => createLogger("test", { level: process.env.PLUM_TEST_LOG_LEVEL ?? "silent" });

/** The audit rows of one action in the agent's ops database, oldest first. */
async function auditRows(dbs: FreshDatabases, action: string): Promise<Array<{ actor: string; outcome: string; detail: Record<string, unknown> }>> {
  const client = new pg.Client(clientConfig(dbs.server, dbs.ops));
  await client.connect();
  try {
    return (await client.query("select actor, outcome, detail from audit_log where action = $1 order by id", [action])).rows;
  } finally {
    await client.end();
  }
}

/** Nine aliases of nine aliases of …: a few hundred bytes that expand to 9^9 strings ("billion laughs"). */
function aliasBomb(): string {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  let previous = "a";
  for (const name of "bcdefghi") {
    lines.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(",")}]`);
    previous = name;
  }
  return `${lines.join("\n")}\n`;
}

describe("security: the console's and the HTTP layer's findings (issue 11)", function () {
  describe("b. the lockout does not tell real accounts from unknown names", () => {
    let agent: Agent;
    let dbs: FreshDatabases;
    let stop: () => Promise<void>;
    const LOCKOUT = 30;
    before(async () => {
      ({ agent, dbs, stop } = await startInProcessAgent((config) => {
        config.security = { loginMaxFailures: 2, loginWindowSeconds: 60, lockoutSeconds: LOCKOUT, loginRateLimitPerMinute: 1000 };
      }));
    });
    after(() => stop());

    it("answers, counts Retry-After down and locks alike for the admin account and for a name nobody has", async () => {
      const web = new WebClient(agent.consoleApp);
      const token = await web.csrfFrom("/login");
      const attempt = (username: string) => web.post("/login", { username, password: "not the password at all" }, token);
      const errorOf = (res: request.Response) =>
        /<p class="error"[^>]*>([^<]+)</.exec(res.text)?.[1] ?? /role="alert"[^>]*>([^<]+)</.exec(res.text)?.[1] ?? res.text;
      const names = ["admin", "nobody-has-this-name"];

      // Interleaved, so both locks start within one attempt of each other.
      for (let i = 0; i < 2; i++) {
        for (const name of names) expect((await attempt(name)).status, `${name} failure ${i + 1}`).to.equal(401);
      }
      const [realLocked, unknownLocked] = [await attempt(names[0]), await attempt(names[1])];
      expect([realLocked.status, unknownLocked.status]).to.deep.equal([429, 429]);
      expect(errorOf(unknownLocked).replace(/\d+ seconds/, "N seconds")).to.equal(errorOf(realLocked).replace(/\d+ seconds/, "N seconds"));

      // The real account's wait counts down; an unknown name's must too, in step with it.
      const counted = await waitFor(
        "the admin's Retry-After to count down",
        async () => {
          const res = await attempt(names[0]);
          return Number(res.headers["retry-after"]) < LOCKOUT - 3 ? res : undefined;
        },
        { timeoutMs: 20_000, firstDelayMs: 500, maxDelayMs: 1000 },
      );
      const unknown = await attempt(names[1]);
      expect(unknown.status).to.equal(429);
      const [realWait, unknownWait] = [Number(counted.headers["retry-after"]), Number(unknown.headers["retry-after"])];
      expect(unknownWait, `unknown name waits ${unknownWait} s, the admin ${realWait} s`).to.be.below(LOCKOUT - 1);
      expect(Math.abs(unknownWait - realWait)).to.be.at.most(2);
      expect(errorOf(unknown).replace(/\d+ seconds/, "N seconds")).to.equal(errorOf(counted).replace(/\d+ seconds/, "N seconds"));

      // Both were recorded as locked, and the audit log still tells them apart.
      const locked = await auditRows(dbs, "login.locked");
      expect(new Set(locked.map((r) => r.actor))).to.deep.equal(new Set(["user:admin", "user:nobody-has-this-name"]));
      const failures = await auditRows(dbs, "login.failure");
      expect(failures.filter((r) => r.actor === "user:nobody-has-this-name").map((r) => r.detail.reason)).to.deep.equal(["unknown user", "unknown user"]);
    });

    it("i. a YAML alias bomb in plum.yaml is a configuration error naming the file, not a crash", async () => {
      writeFileSync(agent.config.configFile, aliasBomb());
      let error: unknown;
      try {
        await agent.reloadConfig("user:admin");
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(ConfigError);
      const configError = error as ConfigError;
      expect(configError.message).to.include(`invalid configuration (1 problem) in ${agent.config.configFile}`);
      expect(configError.problems).to.deep.equal([
        "YAML: Excessive alias count indicates a resource exhaustion attack: the file expands its aliases (*name) too often; write the values out instead of repeating aliases of aliases",
      ]);
      expect(configError.hint).to.equal("fix the keys above in plum.yaml (or the environment variables named) and start again");
      const reloads = await auditRows(dbs, "config.reload");
      expect(reloads.at(-1)).to.deep.include({ actor: "user:admin", outcome: "failure" });

      // The same at start (loadConfig is what `plumctl agent` and every command read plum.yaml with).
      const home = tempHome();
      try {
        writeFileSync(`${home}/plum.yaml`, aliasBomb());
        expect(() => loadConfig({ PLUM_HOME: home })).to.throw(ConfigError, `in ${home}/plum.yaml`);
      } finally {
        removeHome(home);
      }
    });
  });

  describe("c. X-Forwarded-For counts only from configured proxies", () => {
    let agent: Agent;
    let dbs: FreshDatabases;
    let stop: () => Promise<void>;
    before(async () => {
      ({ agent, dbs, stop } = await startInProcessAgent((config) => {
        config.security = { ...config.security, loginRateLimitPerMinute: 3 };
      }));
    });
    after(() => stop());

    it("the console: a client that sends a new X-Forwarded-For each time neither escapes the sign-in limit nor sets its audited address", async () => {
      const web = new WebClient(agent.consoleApp);
      const token = await web.csrfFrom("/login");
      const statuses: number[] = [];
      for (let i = 1; i <= 4; i++) {
        const res = await request(agent.consoleApp)
          .post("/login")
          .set("Cookie", web.cookieHeader())
          .set("X-Forwarded-For", `203.0.113.${i}`)
          .type("form")
          .send(new URLSearchParams({ username: "admin", password: `guess number ${i}`, _csrf: token }).toString())
          .redirects(0);
        statuses.push(res.status);
      }
      expect(statuses).to.deep.equal([401, 401, 401, 429]);
      const ips = (await auditRows(dbs, "login.failure")).map((r) => r.detail.ip);
      expect(ips).to.have.length(3);
      for (const ip of ips) expect(ip).to.be.oneOf(["127.0.0.1", "::ffff:127.0.0.1", "::1"]);
    });

    it("the product behind the edge proxy: req.ip is the address the edge proxy saw, not what the client wrote", async () => {
      const sequelize: Sequelize = openSequelize(clientConfig(dbs.server, dbs.product), { poolMax: 5 });
      const app = createProductApp({
        sequelize,
        logger: silent(),
        slot: "production",
        sessionKey: Buffer.alloc(32, 7),
        secureCookies: false,
        security: TEST_SECURITY,
        sessionHours: 12,
      });
      const instance = http.createServer(app);
      await new Promise<void>((resolve) => instance.listen(0, "127.0.0.1", resolve));
      const proxy = new EdgeProxy({ log: silent(), registry: new Registry() });
      const base = `http://127.0.0.1:${await proxy.listen(0, "127.0.0.1")}`;
      try {
        proxy.switchTo({ id: "production@test", version: "test", url: `http://127.0.0.1:${(instance.address() as AddressInfo).port}` });
        const page = await fetch(`${base}/login`);
        const cookie = (page.headers.get("set-cookie") ?? "").split(";")[0];
        const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1];
        const res = await fetch(`${base}/login`, {
          method: "POST",
          redirect: "manual",
          headers: { cookie, "content-type": "application/x-www-form-urlencoded", "x-forwarded-for": "6.6.6.6" },
          body: new URLSearchParams({ username: "someone", password: "wrong password", _csrf: token }).toString(),
        });
        expect(res.status).to.equal(401);
        const events = await app.productContext.models.ProductEvent.findAll({ where: { action: "login.failure", actor: "user:someone" } });
        expect(events.map((e) => (e.detail as { ip: string }).ip)).to.deep.equal(["127.0.0.1"]);
      } finally {
        await proxy.close(1000);
        instance.closeAllConnections();
        await new Promise((resolve) => instance.close(resolve));
        await sequelize.close();
      }
    });

    it("plum.yaml names the trusted proxies (addresses, CIDR blocks, loopback or a hop count) and refuses anything else", () => {
      const home = tempHome();
      try {
        writeFileSync(`${home}/plum.yaml`, 'console:\n  trustedProxies: [loopback, 10.0.0.0/8, "::1"]\nhttp:\n  trustedProxies: 1\n');
        const config = loadConfig({ PLUM_HOME: home });
        expect(config.console.trustedProxies).to.deep.equal(["loopback", "10.0.0.0/8", "::1"]);
        expect(config.http.trustedProxies).to.equal(1);
        expect(loadConfig({ PLUM_HOME: tempHomeWith("") }).console.trustedProxies).to.deep.equal([]);
        writeFileSync(`${home}/plum.yaml`, "console:\n  trustedProxies: [10.0.0.0/33, proxy.example.com]\n");
        expect(() => loadConfig({ PLUM_HOME: home }))
          .to.throw(ConfigError)
          .with.property("problems")
          .that.deep.equals([
            'console.trustedProxies.0: "10.0.0.0/33" has a prefix length that is not 0–32: must be the reverse proxies in front of the console whose X-Forwarded-For counts: addresses or CIDR blocks, e.g. ["loopback"] for a TLS proxy on this host, or a hop count; [] (the default): none, the connection\'s address is the client\'s',
            'console.trustedProxies.1: "proxy.example.com" is not an IP address, a CIDR block (10.0.0.0/8) or "loopback": must be the reverse proxies in front of the console whose X-Forwarded-For counts: addresses or CIDR blocks, e.g. ["loopback"] for a TLS proxy on this host, or a hop count; [] (the default): none, the connection\'s address is the client\'s',
          ]);
      } finally {
        removeHome(home);
      }
    });
  });
});

const homes: string[] = [];
function tempHomeWith(yaml: string): string {
  const home = tempHome();
  homes.push(home);
  writeFileSync(`${home}/plum.yaml`, yaml);
  return home;
}
after(() => homes.forEach(removeHome));
