import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { PlumError } from "../lib/errors.ts";
import { commandLineOf, isAlive } from "../lib/processes.ts";

/** The agent pid file of a PLUM_HOME: what it names and whether that process is still an agent. */
export interface AgentPidFile {
  file: string;
  /** The pid written in it; undefined when there is no file (the agent stopped cleanly, or never ran). */
  pid?: number;
  /** The pid is alive and is an agent (not a pid reused by something else after a killed agent). */
  alive: boolean;
}

export function agentPidFile(runDir: string): AgentPidFile {
  const file = path.join(runDir, "agent.pid");
  if (!existsSync(file)) return { file, alive: false };
  const pid = Number(readFileSync(file, "utf8").trim());
  if (!(pid > 0)) return { file, alive: false };
  return { file, pid, alive: isAlive(pid) && commandLineOf(pid).includes("agent") };
}

/**
 * One agent per PLUM_HOME. A pid file left by a killed agent is stale (its pid is gone or is no longer an
 * agent) and is taken over; a live agent is refused with its pid.
 */
export function acquireAgentLock(runDir: string): { release(): void } {
  const held = agentPidFile(runDir);
  if (held.alive && held.pid !== process.pid) {
    throw new PlumError(`another agent (pid ${held.pid}) is already running for this PLUM_HOME`, {
      hint: `stop it first (kill ${held.pid}), or use another PLUM_HOME`,
    });
  }
  writeFileSync(held.file, `${process.pid}\n`, { mode: 0o644 });
  return {
    release() {
      if (existsSync(held.file) && readFileSync(held.file, "utf8").trim() === String(process.pid)) rmSync(held.file, { force: true });
    },
  };
}
