import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import path from "node:path";
import type { JobView } from "../../backup/jobs/backup-jobs.ts";
import type { JobRequest } from "../../backup/jobs/backup-requests.ts";
import { PlumError } from "../../lib/errors.ts";
import { homeLayout } from "../../lib/paths.ts";
import { isAlive } from "../../lib/processes.ts";
import { readControlToken } from "../../lib/secrets.ts";
import { agentGone, agentStoppedAnswering, askedOf, type Asked } from "./agent-gone.ts";

/**
 * Where the control API listens: a Unix socket in PLUM_HOME/run (0600, the agent's user), or, where a socket
 * cannot be made (a path longer than the kernel takes), a loopback port of its own. Never the console's port.
 */
export type ControlAddress = { socket: string } | { url: string };

/** Where a running agent listens; written by the agent at start (no secret in it). */
export interface AgentEndpoint {
  pid: number;
  /** The console listener (pages only: it does not answer the control API). */
  consoleUrl: string;
  /** The edge proxy (absent in files written by older agents). */
  proxyUrl?: string;
  /** The control API's own listener (absent in files written by agents that served it on the console's port). */
  control?: ControlAddress;
}

/** The control listener in words, for sentences: `unix:/…/run/control.sock` or its URL. */
export function controlAddressText(address: ControlAddress): string {
  return "socket" in address ? `unix:${address.socket}` : address.url;
}

export function writeAgentEndpoint(runDir: string, endpoint: AgentEndpoint): void {
  writeFileSync(path.join(runDir, "agent.json"), JSON.stringify(endpoint) + "\n", { mode: 0o644 });
}

/** The running agent of this PLUM_HOME, if there is one (a file left by a killed agent names a pid that is gone). */
export function runningAgent(runDir: string): AgentEndpoint | undefined {
  const file = path.join(runDir, "agent.json");
  if (!existsSync(file)) return undefined;
  const endpoint = JSON.parse(readFileSync(file, "utf8")) as AgentEndpoint;
  return isAlive(endpoint.pid) ? endpoint : undefined;
}

/** A running agent and the control token that speaks for the host's root to it. */
export interface AgentLink {
  endpoint: AgentEndpoint & { control: ControlAddress };
  token: string;
}

/** The link to this PLUM_HOME's running agent; undefined when none runs (then a command may act directly). */
export function agentLink(home: string): AgentLink | undefined {
  const layout = homeLayout(home);
  const endpoint = runningAgent(layout.runDir);
  if (!endpoint) return undefined;
  if (!endpoint.control)
    throw new PlumError(
      `the running agent (pid ${endpoint.pid}) names no control listener in ${path.join(layout.runDir, "agent.json")}: it is older than this plumctl`,
      {
        hint: "restart the agent (the plum service) so that it runs this release",
      },
    );
  return { endpoint: endpoint as AgentLink["endpoint"], token: readControlToken(layout.secretsDir) };
}

/** The link to this PLUM_HOME's running agent, for commands only the agent can carry out. */
export function requiredAgentLink(home: string): AgentLink {
  const link = agentLink(home);
  if (!link) throw new PlumError("the agent is not running", { hint: "start it first (`npm start`, or the plum service)" });
  return link;
}

/** A failure while talking to the agent: the sentence for a connection that went away, else the error as it is. */
function explained(err: unknown, link: AgentLink, asked: Asked): unknown {
  return err instanceof PlumError ? err : (agentGone(err, agentAt(link), asked) ?? err);
}

const agentAt = (link: AgentLink) => ({ pid: link.endpoint.pid, at: controlAddressText(link.endpoint.control) });

/** The connection ending before the answer did, as node's http says it: closed (FIN) or reset (RST). */
function endedEarly(socketError: NodeJS.ErrnoException | undefined): Error {
  if (socketError) return socketError;
  return Object.assign(new Error("the connection closed before the answer ended"), { code: "EPIPE" });
}

/** An answer of the control API, its body still to read. */
interface ControlAnswer {
  status: number;
  body: AsyncIterable<Buffer>;
}

/**
 * The one authorised request to the control API, over its socket (or loopback port); a refusal becomes a
 * PlumError with the agent's reason and hint, a connection that fails (the agent stopped, crashed or restarts)
 * an AgentGoneError saying what to run.
 */
async function controlRequest(link: AgentLink, method: "GET" | "POST", route: string, body: unknown, timeoutMs: number): Promise<ControlAnswer> {
  const asked = askedOf(method, route, body);
  const where = link.endpoint.control;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  let socketError: NodeJS.ErrnoException | undefined;
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const target = "socket" in where ? { socketPath: where.socket } : { host: new URL(where.url).hostname, port: Number(new URL(where.url).port) };
      const req = httpRequest({
        ...target,
        method,
        path: `/control${route}`,
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${link.token}`,
          ...(payload && { "content-length": String(payload.length) }),
        },
        signal: AbortSignal.timeout(timeoutMs),
        // A connection of its own: the socket's error listener below then goes with it, not onto a kept-alive
        // socket that gathers one per request (Node 20's global agent keeps sockets alive).
        agent: false,
      });
      req.once("socket", (socket) => socket.on("error", (e: NodeJS.ErrnoException) => (socketError ??= e)));
      req.once("response", resolve);
      req.once("error", (e: NodeJS.ErrnoException) => reject(e.message === "socket hang up" ? endedEarly(socketError) : e));
      req.end(payload);
    });
    const answer: ControlAnswer = {
      status: res.statusCode ?? 0,
      body: (async function* () {
        try {
          for await (const chunk of res) yield chunk as Buffer;
        } catch (e) {
          if ((e as Error).message !== "aborted") throw e;
          // The socket's own error (a reset) may be reported a moment after the answer was cut off.
          await new Promise((r) => setTimeout(r, 20));
          throw endedEarly(socketError);
        }
      })(),
    };
    if (answer.status >= 200 && answer.status < 300) return answer;
    const text = (await readAll(answer.body)).toString("utf8");
    let refusal: { error?: string; hint?: string; detail?: string } = {};
    try {
      refusal = JSON.parse(text) ?? {};
    } catch {
      // not the control API's JSON: the status says it
    }
    throw new PlumError(refusal.error ?? `the agent answered ${answer.status}`, { hint: refusal.hint, detail: refusal.detail });
  } catch (err) {
    throw explained(err, link, asked);
  }
}

async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** One call to the running agent's control API: its JSON answer. */
export async function callAgent<T>(link: AgentLink, method: "GET" | "POST", route: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  const res = await controlRequest(link, method, route, body, timeoutMs);
  try {
    return JSON.parse((await readAll(res.body)).toString("utf8")) as T;
  } catch (err) {
    throw explained(err, link, askedOf(method, route, body));
  }
}

/** Ask the agent to run a job and follow it to the end (progress lines as they come), with a deadline. */
export async function runJobViaAgent(link: AgentLink, request: JobRequest, onProgress: (line: string) => void, timeoutMs = 6 * 3600_000): Promise<JobView> {
  const asked = askedOf("POST", "/jobs", request);
  const res = await controlRequest(link, "POST", "/jobs", request, timeoutMs);
  let buffered = "";
  let finished: JobView | undefined;
  try {
    for await (const chunk of res.body) {
      buffered += chunk.toString("utf8");
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const event = JSON.parse(buffered.slice(0, nl)) as { type: string; line?: string; job?: JobView };
        buffered = buffered.slice(nl + 1);
        if (event.type === "progress" && event.line) onProgress(event.line);
        if (event.type === "done") finished = event.job;
      }
    }
  } catch (err) {
    throw explained(err, link, asked);
  }
  // The answer ended cleanly but without the job's end: the agent let go of the request (it is stopping).
  if (!finished) throw agentStoppedAnswering("ended its answer before the job's end", agentAt(link), asked);
  return finished;
}
