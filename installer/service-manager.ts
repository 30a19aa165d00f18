import { existsSync, readFileSync } from "node:fs";
import { runChild } from "../lib/child-process.ts";

/**
 * Whether systemd runs this host (sd_booted(3): /run/systemd/system exists only when systemd is PID 1).
 * Not booted (a container, a chroot, these build machines): units are written and enabled for the next
 * boot, but nothing can start them now.
 */
export function systemdBooted(): boolean {
  return existsSync("/run/systemd/system");
}

/** What PID 1 is, for a sentence: "systemd", "docker-init", "bash". */
export function initName(): string {
  try {
    return readFileSync("/proc/1/comm", "utf8").trim();
  } catch {
    return "unknown";
  }
}

export async function systemctl(args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await runChild(["systemctl", ...args], { timeoutMs, what: `systemctl ${args.join(" ")}`, hint: "journalctl -u plum -n 50 says why" });
  return stdout;
}

/** Whether the unit is active (systemctl is-active exits 0); false where systemd does not run. */
export async function unitActive(unit: string): Promise<boolean> {
  if (!systemdBooted()) return false;
  try {
    await runChild(["systemctl", "is-active", "--quiet", unit], { timeoutMs: 15_000 });
    return true;
  } catch {
    return false;
  }
}
