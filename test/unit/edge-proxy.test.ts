import http from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { Registry } from "prom-client";
import { EdgeProxy } from "../../appliance/proxy/edge-proxy.ts";
import { createLogger } from "../../lib/logger.ts";
import { waitFor } from "../../lib/wait.ts";

/** A real HTTP server on loopback standing in for a product instance. */
async function upstream(name: string, handler?: http.RequestListener) {
  const server = http.createServer(
    handler ??
      ((req, res) => {
        let body = "";
        req.on("data", (d) => (body += d));
        req.on("end", () => {
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify({ name, method: req.method, url: req.url, body, headers: req.headers }));
        });
      }),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, url, close: () => new Promise((r) => server.close(r)) };
}

describe("edge proxy", () => {
  let proxy: EdgeProxy;
  let base: string;
  beforeEach(async () => {
    proxy = new EdgeProxy({ log: createLogger("test-proxy", { level: "silent" }), registry: new Registry() });
    base = `http://127.0.0.1:${await proxy.listen(0, "127.0.0.1")}`;
  });
  afterEach(() => proxy.close(1000));

  it("answers 503 with Retry-After while no instance serves", async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).to.equal(503);
    expect(res.headers.get("retry-after")).to.equal("5");
    expect(await res.json()).to.deep.equal({ error: "no product instance is serving yet; retry shortly" });
  });

  it("forwards method, path, body and status, with a request id and forwarding headers", async () => {
    const a = await upstream("a");
    try {
      proxy.switchTo({ id: "production@1", version: "1", url: a.url });
      const res = await fetch(`${base}/things?x=1`, {
        method: "POST",
        body: "hello",
        headers: { "content-type": "text/plain", "x-request-id": "req-12345678" },
      });
      expect(res.status).to.equal(200);
      const seen = (await res.json()) as { name: string; method: string; url: string; body: string; headers: Record<string, string> };
      expect(seen).to.include({ name: "a", method: "POST", url: "/things?x=1", body: "hello" });
      expect(seen.headers["x-request-id"]).to.equal("req-12345678");
      expect(seen.headers["x-forwarded-for"]).to.equal("127.0.0.1");
      expect(seen.headers["x-forwarded-proto"]).to.equal("http");
    } finally {
      await a.close();
    }
  });

  it("never passes the ops console's cookies on to the product", async () => {
    const a = await upstream("a");
    try {
      proxy.switchTo({ id: "production@1", version: "1", url: a.url });
      const seen = (await (await fetch(`${base}/`, { headers: { cookie: "plum_ops_session=secret; plum_session=abc; plum_ops_csrf=x" } })).json()) as {
        headers: Record<string, string>;
      };
      expect(seen.headers.cookie).to.equal("plum_session=abc");
      const none = (await (await fetch(`${base}/`, { headers: { cookie: "plum_ops_session=secret" } })).json()) as { headers: Record<string, string> };
      expect(none.headers).not.to.have.property("cookie");
    } finally {
      await a.close();
    }
  });

  it("switches atomically: a request in flight finishes on the old instance, new ones reach the new one", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const slowStarted = new Promise<void>((r) => (started = r));
    const old = await upstream("old", (req, res) => {
      started();
      void gate.then(() => res.end(`old:${req.url}`));
    });
    const next = await upstream("new", (req, res) => res.end(`new:${req.url}`));
    try {
      proxy.switchTo({ id: "production@1", version: "1", url: old.url });
      const slowResponse = fetch(`${base}/slow`).then((r) => r.text());
      await slowStarted;
      const previous = proxy.switchTo({ id: "production@2", version: "2", url: next.url });
      expect(previous?.id).to.equal("production@1");
      expect(await (await fetch(`${base}/fast`)).text()).to.equal("new:/fast");
      let drained = false;
      const draining = proxy.drain("production@1", 5000).then(() => (drained = true));
      await new Promise((r) => setTimeout(r, 100));
      expect(drained, "drain waits for the request in flight").to.equal(false);
      release();
      expect(await slowResponse).to.equal("old:/slow");
      await draining;
      expect(drained).to.equal(true);
    } finally {
      await next.close();
      await old.close();
    }
  });

  it("loses no request under steady keep-alive load across switches in both directions, each old instance stopped after draining", async () => {
    // Instances answer after a few ms, like a product doing a query, and stop the way `plumctl serve` does.
    const make = (name: string) => upstream(name, (req, res) => void setTimeout(() => res.end(`${name}:${req.url}`), 2 + Math.random() * 8));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const get = (i: number) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        http
          .get(`${base}/r${i}`, { agent }, (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          })
          .on("error", reject);
      });
    const seen = { ok: 0, failed: [] as string[], by: new Map<string, number>() };
    let stop = false;
    const clients = Array.from({ length: 20 }, async (_, c) => {
      for (let i = 0; !stop; i++) {
        try {
          const r = await get(c * 100_000 + i);
          if (r.status !== 200) seen.failed.push(`${r.status} ${r.body}`);
          else {
            const version = r.body.split(":")[0];
            seen.ok++;
            seen.by.set(version, (seen.by.get(version) ?? 0) + 1);
          }
        } catch (err) {
          seen.failed.push((err as Error).message);
        }
      }
    });
    // Each instance serves a good number of requests before the next switch, however slow the machine.
    const served = (name: string) =>
      waitFor(`50 requests answered by ${name}`, async () => ((seen.by.get(name) ?? 0) >= 50 ? true : undefined), {
        timeoutMs: 30_000,
        firstDelayMs: 10,
        maxDelayMs: 50,
      });
    let current = await make("v1");
    proxy.switchTo({ id: "production@v1", version: "v1", url: current.url });
    let previousName = "v1";
    for (const name of ["v2", "v1b", "v2b", "v1c"]) {
      await served(previousName);
      previousName = name;
      const next = await make(name);
      const previous = proxy.switchTo({ id: `production@${name}`, version: name, url: next.url })!;
      await proxy.drain(previous.id, 5000);
      current.server.closeIdleConnections();
      await current.close();
      current = next;
    }
    await served(previousName);
    stop = true;
    await Promise.all(clients);
    agent.destroy();
    await current.close();
    expect(seen.failed, seen.failed.slice(0, 5).join("; ")).to.deep.equal([]);
    expect(seen.ok).to.be.at.least(250);
    expect([...seen.by.keys()].sort()).to.deep.equal(["v1", "v1b", "v1c", "v2", "v2b"]);
  });

  it("does not count a client that hangs up as a 5xx of the instance (the soak judges by these answers)", async () => {
    let reached!: () => void;
    const slowReached = new Promise<void>((r) => (reached = r));
    const slow = await upstream("slow", () => reached()); // never answers
    const answers: number[] = [];
    const unsubscribe = proxy.onAnswer((a) => answers.push(a.status));
    try {
      proxy.switchTo({ id: "production@1", version: "1", url: slow.url });
      const aborter = new AbortController();
      const request = fetch(`${base}/hangs`, { signal: aborter.signal }).catch((err: Error) => err.name);
      await slowReached;
      aborter.abort();
      expect(await request).to.equal("AbortError");
      await waitFor("the proxy to record the answer", async () => (answers.length > 0 ? true : undefined), { timeoutMs: 5000 });
      expect(answers).to.deep.equal([499]);
    } finally {
      unsubscribe();
      slow.server.closeAllConnections();
      await slow.close();
    }
  });

  it("warms an instance before the switch: its connections are open when traffic arrives", async () => {
    const next = await upstream("next", (req, res) => res.end(`next:${req.url}`));
    let connections = 0;
    next.server.on("connection", () => connections++);
    try {
      await proxy.warm({ id: "production@2", version: "2", url: next.url }, { connections: 8, rounds: 2 });
      expect(connections).to.equal(8);
      proxy.switchTo({ id: "production@2", version: "2", url: next.url });
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${base}/after/${i}`).then((r) => r.text())));
      expect(answers).to.deep.equal(Array.from({ length: 8 }, (_, i) => `next:/after/${i}`));
      expect(connections, "the switch reused the warmed connections").to.equal(8);
    } finally {
      next.server.closeAllConnections();
      await next.close();
    }
  });

  it("warms as many connections as it lately had requests in flight at once, with a quarter more", async () => {
    const held: http.ServerResponse[] = [];
    const a = await upstream("a", (_req, res) => held.push(res));
    const next = await upstream("next", (req, res) => res.end(`next:${req.url}`));
    let connections = 0;
    next.server.on("connection", () => connections++);
    try {
      proxy.switchTo({ id: "production@1", version: "1", url: a.url });
      const inFlight = Array.from({ length: 20 }, (_, i) => fetch(`${base}/held/${i}`).then((r) => r.text()));
      await waitFor("20 requests in flight on the first instance", async () => (held.length === 20 ? true : undefined), { timeoutMs: 10_000 });
      for (const res of held) res.end("a");
      expect(await Promise.all(inFlight)).to.deep.equal(Array.from({ length: 20 }, () => "a"));
      // Nothing is in flight now: the peak of 20 still sizes the warm-up (a connection short at the switch
      // would hold a request until the busy new instance accepts it).
      const warmed = await proxy.warm({ id: "production@2", version: "2", url: next.url }, { connections: 4, rounds: 1 });
      expect(warmed.connections).to.equal(25);
      expect(connections).to.equal(25);
    } finally {
      a.server.closeAllConnections();
      next.server.closeAllConnections();
      await Promise.all([a.close(), next.close()]);
    }
  });

  it("answers 502 with the request id when the instance is gone", async () => {
    const a = await upstream("a");
    proxy.switchTo({ id: "production@1", version: "1", url: a.url });
    await a.close();
    const res = await fetch(`${base}/x`, { headers: { "x-request-id": "req-abcdefgh" } });
    expect(res.status).to.equal(502);
    expect(await res.json()).to.deep.equal({ error: "the product instance did not answer", requestId: "req-abcdefgh" });
  });
});
