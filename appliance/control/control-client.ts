import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { JobView } from "../../backup/jobs/backup-jobs.ts";
import type { JobRequest } from "../../backup/jobs/backup-requests.ts";
import { PlumError } from "../../lib/errors.ts";
import { homeLayout } from "../../lib/paths.ts";
import { isAlive } from "../../lib/processes.ts";
import { readControlToken } from "../../lib/secrets.ts";
import { agentGone, agentStoppedAnswering, askedOf, type Asked } from "./agent-gone.ts";

/** Where a running agent listens; written by the agent at start (no secret in it). */
export interface AgentEndpoint {
  pid: number;
  /** The console listener, which serves the control API. */
  consoleUrl: string;
  /** The edge proxy (absent in files written by older agents). */
  proxyUrl?: string;
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
  endpoint: AgentEndpoint;
  token: string;
}

/** The link to this PLUM_HOME's running agent; undefined when none runs (then a command may act directly). */
export function agentLink(home: string): AgentLink | undefined {
  const layout = homeLayout(home);
  const endpoint = runningAgent(layout.runDir);
  return endpoint && { endpoint, token: readControlToken(layout.secretsDir) };
}

/** The link to this PLUM_HOME's running agent, for commands only the agent can carry out. */
export function requiredAgentLink(home: string): AgentLink {
  const link = agentLink(home);
  if (!link) throw new PlumError("the agent is not running", { hint: "start it first (`npm start`, or the plum service)" });
  return link;
}

/** A failure while talking to the agent: the sentence for a connection that went away, else the error as it is. */
function explained(err: unknown, link: AgentLink, asked: Asked): unknown {
  return err instanceof PlumError ? err : (agentGone(err, link.endpoint, asked) ?? err);
}

/**
 * The one authorised request to the control API; a refusal becomes a PlumError with the agent's reason and
 * hint, a connection that fails (the agent stopped, crashed or restarts) an AgentGoneError saying what to run.
 */
async function controlRequest(link: AgentLink, method: "GET" | "POST", route: string, body: unknown, timeoutMs: number): Promise<Response> {
  const asked = askedOf(method, route, body);
  try {
    const res = await fetch(new URL(`/control${route}`, link.endpoint.consoleUrl), {
      method,
      headers: { "content-type": "application/json", authorization: `Bearer ${link.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.ok) return res;
    const refusal = (await res.json().catch(() => ({}))) as { error?: string; hint?: string; detail?: string };
    throw new PlumError(refusal.error ?? `the agent answered ${res.status}`, { hint: refusal.hint, detail: refusal.detail });
  } catch (err) {
    throw explained(err, link, asked);
  }
}

/** One call to the running agent's control API: its JSON answer. */
export async function callAgent<T>(link: AgentLink, method: "GET" | "POST", route: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  const res = await controlRequest(link, method, route, body, timeoutMs);
  try {
    return (await res.json()) as T;
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
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += Buffer.from(chunk).toString("utf8");
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
  if (!finished) throw agentStoppedAnswering("ended its answer before the job's end", link.endpoint, asked);
  return finished;
}
