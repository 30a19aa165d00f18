import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { JobView } from "../../backup/jobs/backup-jobs.ts";
import type { JobRequest } from "../../backup/jobs/backup-requests.ts";
import { PlumError } from "../../lib/errors.ts";
import { isAlive } from "../../lib/processes.ts";

/** Where a running agent's control API is; written by the agent at start (no secret in it). */
export interface AgentEndpoint {
  pid: number;
  consoleUrl: string;
}

export function writeAgentEndpoint(runDir: string, endpoint: AgentEndpoint): void {
  writeFileSync(path.join(runDir, "agent.json"), JSON.stringify(endpoint) + "\n", { mode: 0o644 });
}

/** The running agent of this PLUM_HOME, if there is one. */
export function runningAgent(runDir: string): AgentEndpoint | undefined {
  const file = path.join(runDir, "agent.json");
  if (!existsSync(file)) return undefined;
  const endpoint = JSON.parse(readFileSync(file, "utf8")) as AgentEndpoint;
  return isAlive(endpoint.pid) ? endpoint : undefined;
}

/** Ask the agent to run a job and follow it to the end (progress lines as they come), with a deadline. */
export async function runJobViaAgent(
  endpoint: AgentEndpoint,
  token: string,
  request: JobRequest,
  onProgress: (line: string) => void,
  timeoutMs = 6 * 3600_000,
): Promise<JobView> {
  const res = await fetch(new URL("/control/jobs", endpoint.consoleUrl), {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(request),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok || !res.body) throw new PlumError(`the agent refused the job: ${res.status} ${await res.text()}`);
  let buffered = "";
  let finished: JobView | undefined;
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
  if (!finished)
    throw new PlumError("the agent stopped answering before the job finished", { hint: "see the job on the console's Backups page, and the agent log" });
  return finished;
}

/** One call to the control API of this PLUM_HOME's running agent; its JSON answer, or a PlumError with the agent's reason. */
export async function callAgent<T>(runDir: string, token: string, method: "GET" | "POST", route: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  const endpoint = runningAgent(runDir);
  if (!endpoint) throw new PlumError("the agent is not running", { hint: "start it first (`npm start`, or the plum service)" });
  const res = await fetch(new URL(`/control${route}`, endpoint.consoleUrl), {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const answer = (await res.json().catch(() => ({}))) as T & { error?: string; hint?: string };
  if (!res.ok) throw new PlumError(answer.error ?? `the agent answered ${res.status}`, { hint: answer.hint });
  return answer;
}
