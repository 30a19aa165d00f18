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
