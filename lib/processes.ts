import { readFileSync } from "node:fs";

/** Whether a process exists (EPERM: it exists, owned by another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function procFile(pid: number, name: string): string {
  try {
    return readFileSync(`/proc/${pid}/${name}`, "utf8").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

/** A process's state letter from /proc (R, S, D, Z for a zombie: exited, not yet reaped); empty when it is gone. */
export function processState(pid: number): string {
  return /^\d+ \(.*\) (\S)/s.exec(procFile(pid, "stat"))?.[1] ?? "";
}

/** A process's command line (empty when it is gone): tells a reused pid from the process we knew. */
export function commandLineOf(pid: number): string {
  return procFile(pid, "cmdline");
}

/** A process's environment, as "K=V K=V …" (empty when it is gone or not ours to read). */
export function environOf(pid: number): string {
  return procFile(pid, "environ");
}

/**
 * When a process started, in clock ticks since boot (/proc/PID/stat, field 22; world-readable, unlike its
 * environment): with its pid, it names one process for good, as a pid alone does not once it is reused.
 */
export function startTimeOf(pid: number): string {
  const stat = procFile(pid, "stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19] ?? "";
}
