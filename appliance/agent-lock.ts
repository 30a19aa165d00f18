import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { PlumError } from "../lib/errors.ts";
import { commandLineOf, isAlive } from "../lib/processes.ts";

/**
 * One agent per PLUM_HOME. A pid file left by a killed agent is stale (its pid is gone or is no longer an
 * agent) and is taken over; a live agent is refused with its pid.
 */
export function acquireAgentLock(runDir: string): { release(): void } {
  const file = path.join(runDir, "agent.pid");
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, "utf8").trim());
    if (pid > 0 && pid !== process.pid && isAlive(pid) && commandLineOf(pid).includes("agent")) {
      throw new PlumError(`another agent (pid ${pid}) is already running for this PLUM_HOME`, {
        hint: `stop it first (kill ${pid}), or use another PLUM_HOME`,
      });
    }
  }
  writeFileSync(file, `${process.pid}\n`, { mode: 0o644 });
  return {
    release() {
      if (existsSync(file) && readFileSync(file, "utf8").trim() === String(process.pid)) rmSync(file, { force: true });
    },
  };
}
