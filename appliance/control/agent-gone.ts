import type { JobRequest } from "../../backup/jobs/backup-requests.ts";
import { PlumError } from "../../lib/errors.ts";
import { isAlive, processState } from "../../lib/processes.ts";

/** The agent went away in the middle of a request: it refused, reset or closed the connection, or never answered. */
export class AgentGoneError extends PlumError {}

/** What a request asked of the agent, in words, and where to look when its answer never came. */
export interface Asked {
  doing: string;
  /** What may be left undone, if anything. */
  risk?: string;
  /** Where to see how it ended, or what to run next. */
  lookAt: string;
}

const HOW: Record<string, string> = {
  ECONNREFUSED: "refused the connection",
  // A control socket file that is not there: the agent is gone (or never made it).
  ENOENT: "has no control socket",
  ECONNRESET: "reset the connection",
  EPIPE: "closed the connection",
  UND_ERR_SOCKET: "closed the connection",
  UND_ERR_CLOSED: "closed the connection",
};

/**
 * How the connection to the agent failed, when that is what `err` is. fetch (undici) wraps it: "fetch failed"
 * before the answer's headers, "terminated" while its body is read, the socket's error as `cause` (an
 * AggregateError of one per address for a name with several). A timeout is the agent not answering at all.
 */
export function connectionFailure(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    const codes = [(e as { code?: unknown }).code, ...((e as { errors?: Array<{ code?: unknown }> }).errors ?? []).map((x) => x.code)];
    const known = codes.find((c): c is string => typeof c === "string" && c in HOW);
    if (known) return HOW[known];
    if ((e as { name?: unknown }).name === "TimeoutError") return "did not answer in time";
    e = (e as { cause?: unknown }).cause;
  }
  if (err instanceof TypeError && err.message === "terminated") return "closed the connection";
  if (err instanceof TypeError && err.message === "fetch failed")
    return `could not be reached (${(err.cause as Error | undefined)?.message ?? "no reason given"})`;
  return undefined;
}

const START = "start it (`npm start`, or the plum service) and read its log (PLUM_HOME/logs/agent.log)";

/** What a control API request asked, for the sentence said when the agent goes away. */
export function askedOf(method: string, route: string, body: unknown): Asked {
  if (route === "/jobs" && method === "POST") {
    const job = body as JobRequest;
    if (job.kind === "restore")
      return {
        doing: `restoring set ${job.setId}`,
        risk: "the restore may not have finished",
        lookAt: `${START}: at start it finishes or undoes an interrupted restore; then \`plumctl backup list\` shows the sets and the console's Audit page what was done`,
      };
    if (job.kind === "backup")
      return {
        doing: `taking a ${job.setKind} backup set`,
        risk: "the set may not be complete",
        lookAt: `\`plumctl backup list\` shows whether it succeeded; ${START}`,
      };
    const doing = {
      copy: "copying sets to the secondary",
      check: "checking a repository",
      forget: "applying the retention policy",
      drill: "running a restore drill",
    }[job.kind];
    return { doing, risk: "the job may not have finished", lookAt: `\`plumctl backup list\` and the console's Evidence page show what was recorded; ${START}` };
  }
  if (route.startsWith("/upgrades") || route === "/rollback")
    return {
      doing: route === "/rollback" ? "rolling back" : method === "GET" ? "following the upgrade" : "running the upgrade",
      risk: "the upgrade is resumed or undone when the agent starts again",
      lookAt: `\`plumctl upgrade status\` reads the upgrade journal even while the agent is down; ${START}`,
    };
  if (route === "/releases/import") return { doing: "importing a release", lookAt: `\`plumctl release list\` shows whether it was imported; ${START}` };
  if (route === "/config/reload") return { doing: "reloading plum.yaml", lookAt: `${START}; \`plumctl config check\` checks plum.yaml` };
  if (route === "/jobs") return { doing: "listing its jobs", lookAt: START };
  if (route === "/status") return { doing: "telling its status", lookAt: START };
  return { doing: `answering ${method} ${route}`, lookAt: START };
}

/** Whether the agent's process is still there (a zombie is an agent that has exited). */
function agentState(pid: number): string {
  if (!isAlive(pid) || processState(pid) === "Z") return `the agent (pid ${pid}) has exited: it crashed, was killed or was stopped`;
  return `the agent (pid ${pid}) still runs: it may be stopping, restarting or stuck`;
}

/**
 * The sentence for a request the agent stopped answering, instead of undici's bare `TypeError: terminated`:
 * what was asked, how the connection ended, what may have happened, and what to run. Undefined when `err` is
 * not the connection failing (a refusal or a bad answer is said as it is).
 */
export function agentGone(err: unknown, agent: { pid: number; at: string }, asked: Asked): AgentGoneError | undefined {
  const how = connectionFailure(err);
  return how ? agentStoppedAnswering(how, agent, asked, err) : undefined;
}

/** The sentence for an agent that `how` (e.g. "ended its answer early") while doing what was asked. */
export function agentStoppedAnswering(how: string, agent: { pid: number; at: string }, asked: Asked, cause?: unknown): AgentGoneError {
  const sentence = `the agent stopped answering while ${asked.doing} (it ${how} at ${agent.at}); ${agentState(agent.pid)}${asked.risk ? `, and ${asked.risk}` : ""}`;
  return new AgentGoneError(sentence, { hint: asked.lookAt, cause });
}
