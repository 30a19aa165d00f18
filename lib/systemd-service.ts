import { readFileSync } from "node:fs";

/**
 * The systemd service this process runs in ("plum.service"), read from its cgroup (/proc/self/cgroup), or
 * undefined: not started by systemd (npm start, Docker, a test), or systemd is not PID 1. Only a service can be
 * restarted by its service manager while its listening sockets stay open (socket activation).
 */
export function serviceOfThisProcess(cgroupText?: string): string | undefined {
  let text = cgroupText;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/cgroup", "utf8");
    } catch {
      return undefined;
    }
  }
  for (const line of text.split("\n")) {
    const cgroupPath = line.split(":").slice(2).join(":");
    const unit = /\/([^/]+\.service)(?:\/|$)/.exec(cgroupPath)?.[1];
    if (unit) return unit;
  }
  return undefined;
}
