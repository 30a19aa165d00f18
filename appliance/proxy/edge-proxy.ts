import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net, { type AddressInfo, type Socket } from "node:net";
import { Counter, Histogram, type Registry } from "prom-client";
import type { Logger } from "../../lib/logger.ts";
import { waitFor } from "../../lib/wait.ts";
import { requestIdOf } from "../../lib/http/request-logging.ts";
import type { ListenOn } from "../../lib/systemd-sockets.ts";

/** Told of every answer the proxy gives: which version answered, the status, and the latency. */
export type AnswerListener = (answer: { version: string; status: number; seconds: number }) => void;

/** An instance the proxy can send traffic to. */
export interface Upstream {
  id: string;
  version: string;
  url: string;
}

interface Target extends Upstream {
  host: string;
  port: number;
  agent: http.Agent;
  inFlight: number;
}

const MAX_SOCKETS = 256;
/** On close, how long an idle client connection may still bring a request (one just accepted brings it at once). */
const CLOSE_IDLE_MS = 1_000;
/** How long a peak of requests in flight counts when a warm-up sizes its connections (two such windows). */
const PEAK_WINDOW_MS = 30_000;

// Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection, not to be forwarded.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Browsers send a host's cookies to every port of it, so the ops console's cookies would reach the product.
 * The proxy drops them: a product instance never sees an ops session.
 */
function withoutOpsCookies(cookie: string | undefined): string | undefined {
  if (!cookie) return cookie;
  const kept = cookie.split(/;\s*/).filter((c) => c !== "" && !c.startsWith("plum_ops_"));
  return kept.length > 0 ? kept.join("; ") : undefined;
}

function forwardable(headers: http.IncomingHttpHeaders | http.OutgoingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

/**
 * The edge proxy: owns the public port and forwards every request to the active production instance.
 * Switching is one assignment: requests already in flight finish on the instance that took them, new ones
 * go to the new instance. `drain` waits until an old instance has nothing in flight.
 */
export class EdgeProxy {
  private active?: Target;
  private server?: http.Server;
  private closing = false;
  /** Each client connection: requests in flight on it, and since when it has had none. */
  private readonly connections = new Map<Socket, { busy: number; since: number }>();
  private readonly requests: Counter<"status" | "version">;
  private readonly latency: Histogram<"version">;
  private readonly answerListeners = new Set<AnswerListener>();

  constructor(private readonly opts: { log: Logger; registry: Registry }) {
    this.requests = new Counter({
      name: "plum_proxy_requests_total",
      help: "Requests answered by the edge proxy, by status and instance version",
      labelNames: ["status", "version"],
      registers: [opts.registry],
    });
    this.latency = new Histogram({
      name: "plum_proxy_request_duration_seconds",
      help: "Latency seen by the edge proxy",
      labelNames: ["version"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [opts.registry],
    });
  }

  /** Follow the answers (the upgrade soak judges a new version by them); returns the unsubscribe. */
  onAnswer(listener: AnswerListener): () => void {
    this.answerListeners.add(listener);
    return () => this.answerListeners.delete(listener);
  }

  get current(): Upstream | undefined {
    return this.active && { id: this.active.id, version: this.active.version, url: this.active.url };
  }

  /** Send new requests to `upstream`; returns the one that was active, still finishing its in-flight requests. */
  switchTo(upstream: Upstream): Upstream | undefined {
    const next = this.targetFor(upstream);
    const previous = this.active;
    this.active = next;
    this.maintenance = undefined;
    this.opts.log.info({ from: previous?.id, to: next.id }, "edge proxy switched");
    if (previous) this.retire(previous);
    return previous && { id: previous.id, version: previous.version, url: previous.url };
  }

  private readonly retired = new Map<string, Target>();
  /** Upstreams warmed up before they take traffic: their connections are already open when the switch comes. */
  private readonly prepared = new Map<string, Target>();

  private targetFor(upstream: Upstream): Target {
    const warmed = this.prepared.get(upstream.id);
    this.prepared.delete(upstream.id);
    if (warmed && warmed.url === upstream.url) return warmed;
    warmed?.agent.destroy();
    const url = new URL(upstream.url);
    return { ...upstream, host: url.hostname, port: Number(url.port), agent: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }), inFlight: 0 };
  }

  /** Requests in flight now (on every upstream), and the most at once in the current and the previous window. */
  private inFlightNow = 0;
  private peakInFlight = { current: 0, previous: 0, windowStart: Date.now() };

  private notePeak(): void {
    const now = Date.now();
    const p = this.peakInFlight;
    if (now - p.windowStart >= PEAK_WINDOW_MS) {
      p.previous = now - p.windowStart >= 2 * PEAK_WINDOW_MS ? 0 : p.current;
      p.current = 0;
      p.windowStart = now;
    }
    p.current = Math.max(p.current, this.inFlightNow);
  }

  /** The most requests the proxy had in flight at once lately (30 to 60 s): what a new upstream must take at once. */
  recentPeakInFlight(): number {
    this.notePeak();
    return Math.max(this.peakInFlight.current, this.peakInFlight.previous);
  }

  /**
   * Before a switch: open kept-alive connections to the upstream and send each a few requests to `path`, so the
   * first requests after the switch neither wait for new sockets nor for the instance's cold code paths. It opens
   * at least `connections`, and as many as the proxy lately had requests in flight at once, with a quarter more:
   * a busy instance accepts about one new connection per turn of its event loop, so each connection the
   * traffic still lacks at the switch holds a request for one more turn (hundreds of ms on two loaded cores).
   * Best effort, with a deadline: a failed warm-up only means a colder switch.
   */
  async warm(upstream: Upstream, opts: { connections?: number; rounds?: number; path?: string; timeoutMs?: number } = {}): Promise<{ connections: number }> {
    const target = this.targetFor(upstream);
    this.prepared.set(upstream.id, target);
    const timeoutMs = opts.timeoutMs ?? 5_000;
    const once = () =>
      new Promise<void>((resolve) => {
        const req = http.request(
          { host: target.host, port: target.port, method: "GET", path: opts.path ?? "/readyz", agent: target.agent, timeout: timeoutMs },
          (res) => {
            res.resume();
            res.on("end", resolve);
            res.on("error", () => resolve());
          },
        );
        req.on("timeout", () => req.destroy());
        req.on("error", () => resolve());
        req.end();
      });
    const connections = Math.min(MAX_SOCKETS, Math.max(opts.connections ?? 32, Math.ceil(this.recentPeakInFlight() * 1.25)));
    await Promise.all(
      Array.from({ length: connections }, async () => {
        for (let i = 0; i < (opts.rounds ?? 3); i++) await once();
      }),
    );
    this.opts.log.info({ upstream: upstream.id, connections }, "edge proxy warmed");
    return { connections };
  }
  private maintenance?: string;

  /** Take traffic off every instance (a restore swaps the database): new requests get 503 with the reason. */
  detach(reason: string): Upstream | undefined {
    const previous = this.active;
    this.active = undefined;
    this.maintenance = reason;
    if (previous) this.retire(previous);
    this.opts.log.info({ from: previous?.id, reason }, "edge proxy detached");
    return previous && { id: previous.id, version: previous.version, url: previous.url };
  }

  private retire(target: Target): void {
    this.retired.set(target.id, target);
    if (target.inFlight === 0) this.forget(target);
  }

  private forget(target: Target): void {
    if (this.retired.get(target.id) === target) {
      this.retired.delete(target.id);
      target.agent.destroy();
    }
  }

  /** Wait (with a deadline) until nothing is in flight on a retired upstream. */
  async drain(id: string, timeoutMs: number): Promise<void> {
    await waitFor(`requests in flight on ${id} to finish`, async () => (this.retired.has(id) ? undefined : true), {
      timeoutMs,
      firstDelayMs: 10,
      maxDelayMs: 100,
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    // Closing (a stop, or a handover to the next agent): the answer ends its connection, so the client's next
    // request opens a new one, which the listening socket queues for whoever listens next.
    if (this.closing) res.shouldKeepAlive = false;
    const conn = this.connections.get(req.socket);
    if (conn) {
      conn.busy++;
      res.once("close", () => {
        conn.busy--;
        conn.since = Date.now();
      });
    }
    const target = this.active;
    const started = process.hrtime.bigint();
    const requestId = requestIdOf(req);
    const done = (status: number, version: string) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.requests.inc({ status: String(status), version });
      this.latency.observe({ version }, seconds);
      for (const listener of this.answerListeners) listener({ version, status, seconds });
    };
    if (!target) {
      res.writeHead(503, { "content-type": "application/json", "retry-after": "5", "x-request-id": requestId });
      res.end(JSON.stringify({ error: this.maintenance ? `${this.maintenance}; retry shortly` : "no product instance is serving yet; retry shortly" }));
      done(503, "none");
      return;
    }
    target.inFlight++;
    this.inFlightNow++;
    this.notePeak();
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      target.inFlight--;
      this.inFlightNow--;
      if (target.inFlight === 0 && this.retired.get(target.id) === target) this.forget(target);
    };
    const remote = req.socket.remoteAddress ?? "";
    const headers = forwardable(req.headers);
    const cookie = withoutOpsCookies(req.headers.cookie);
    if (cookie) headers.cookie = cookie;
    else delete headers.cookie;
    headers["x-request-id"] = requestId;
    headers["x-forwarded-for"] = req.headers["x-forwarded-for"] ? `${req.headers["x-forwarded-for"]}, ${remote}` : remote;
    headers["x-forwarded-proto"] = (req.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
    if (req.headers.host) headers["x-forwarded-host"] = req.headers.host;
    // A kept-alive socket the instance closed just as we reused it fails with ECONNRESET before the instance
    // saw the request; a request without a body is then sent once more on a fresh socket (Node's advice).
    let clientGone = false;
    const replayable = (req.method === "GET" || req.method === "HEAD") && !req.headers["content-length"] && !req.headers["transfer-encoding"];
    const send = (attempt: number): http.ClientRequest => {
      const upstreamReq = http.request({ host: target.host, port: target.port, method: req.method, path: req.url, headers, agent: target.agent });
      upstreamReq.on("response", (upstreamRes) => {
        const status = upstreamRes.statusCode ?? 502;
        res.writeHead(status, upstreamRes.statusMessage, forwardable(upstreamRes.headers));
        upstreamRes.pipe(res);
        upstreamRes.on("end", () => done(status, target.version));
        upstreamRes.on("error", () => res.destroy());
      });
      upstreamReq.on("error", (err: NodeJS.ErrnoException) => {
        if (replayable && attempt === 1 && upstreamReq.reusedSocket && err.code === "ECONNRESET" && !res.headersSent && !res.destroyed) {
          current = send(2);
          return;
        }
        if (clientGone) {
          // The client hung up and we stopped the upstream request: nobody got an error from the instance, so it
          // is not a 5xx of this version (the soak would count it against a release that did nothing wrong).
          this.opts.log.debug({ upstream: target.id, requestId }, "client went away before the answer");
          done(499, target.version);
          finish();
          return;
        }
        this.opts.log.warn({ err: err.message, upstream: target.id, requestId }, "upstream request failed");
        if (!res.headersSent) {
          res.writeHead(502, { "content-type": "application/json", "x-request-id": requestId });
          res.end(JSON.stringify({ error: "the product instance did not answer", requestId }));
          done(502, target.version);
        } else {
          res.destroy();
        }
        finish();
      });
      if (attempt > 1) upstreamReq.end();
      return upstreamReq;
    };
    let current = send(1);
    res.on("close", () => {
      if (!res.writableFinished) {
        clientGone = true;
        current.destroy(); // client went away: stop the upstream work too
      }
      finish();
    });
    req.pipe(current);
  }

  /** Listen on an address, or on a listening socket systemd passed (lib/systemd-sockets.ts); resolves with the port. */
  async listen(on: ListenOn | number, host = "127.0.0.1"): Promise<number> {
    const where = typeof on === "number" ? { port: on, host } : on;
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    this.server = server;
    this.closing = false;
    server.on("connection", (socket: Socket) => {
      this.connections.set(socket, { busy: 0, since: Date.now() });
      socket.once("close", () => this.connections.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(where, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  /**
   * Stop accepting, let requests in flight finish (with a deadline), then close everything. A connection that is
   * idle is closed only once it has been idle for CLOSE_IDLE_MS: http.Server.close() would close at once every
   * connection without a request yet, including one the kernel handed over a moment ago whose request is on its
   * way (a refused request, on the handover to the next agent). Each answer meanwhile ends its connection.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.closing = true;
    // net.Server's close: stop listening (a passed socket stays open in systemd), the connections stay.
    const closed = new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve()));
    const deadline = Date.now() + timeoutMs;
    const idleMs = Math.min(CLOSE_IDLE_MS, timeoutMs / 4);
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const [socket, c] of this.connections)
        if (now >= deadline || (c.busy === 0 && now - c.since >= idleMs)) {
          this.connections.delete(socket);
          socket.destroy();
        }
    }, 50);
    await closed;
    clearInterval(sweep);
    server.closeAllConnections();
    this.active?.agent.destroy();
    for (const t of this.retired.values()) t.agent.destroy();
  }
}
