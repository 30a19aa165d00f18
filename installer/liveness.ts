import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { agentLink, callAgent } from "../appliance/control/control-client.ts";
import { homeLayout } from "../lib/paths.ts";
import { currentLinkOf, installedEnvironment, nodeOf, plumctlOf, type InstallPaths } from "./install-layout.ts";

/**
 * The service's liveness check (plum-liveness.timer runs it every 30 s): the agent's control API must answer
 * a cheap call (its job list) within a few seconds. It answers while the agent restores, upgrades or backs up
 * (those never block its event loop), so a miss means the agent is hung, not busy. After `misses` misses in a
 * row the check asks systemd to restart the service; a crashed agent is systemd's own (Restart=on-failure).
 */
export interface LivenessVerdict {
  alive: boolean;
  /** "answered", "not running", or what went wrong. */
  said: string;
  /** Misses in a row, this one included. */
  misses: number;
  restart: boolean;
}

const STATE = "liveness.json";

function readMisses(file: string): number {
  try {
    return existsSync(file) ? Number(JSON.parse(readFileSync(file, "utf8")).misses) || 0 : 0;
  } catch {
    return 0;
  }
}

function writeMisses(file: string, misses: number): void {
  writeFileSync(`${file}.tmp`, JSON.stringify({ misses, at: new Date().toISOString() }) + "\n", { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export async function livenessCheck(home: string, opts: { timeoutMs: number; misses: number }): Promise<LivenessVerdict> {
  const file = path.join(homeLayout(home).runDir, STATE);
  let said: string;
  let alive: boolean;
  try {
    const link = agentLink(home);
    if (!link) {
      // Not running is not hung: starting it is systemd's (Restart=on-failure) or the admin's.
      if (existsSync(file)) writeMisses(file, 0);
      return { alive: true, said: "not running", misses: 0, restart: false };
    }
    await callAgent(link, "GET", "/jobs", undefined, opts.timeoutMs);
    alive = true;
    said = "answered";
  } catch (err) {
    alive = false;
    said = err instanceof Error ? err.message : String(err);
  }
  const misses = alive ? 0 : readMisses(file) + 1;
  const restart = misses >= opts.misses;
  writeMisses(file, restart ? 0 : misses);
  return { alive, said, misses, restart };
}

export const LIVENESS_SERVICE = "plum-liveness.service";
export const LIVENESS_TIMER = "plum-liveness.timer";
/** How often the timer runs the check, and how many misses in a row restart the agent (≈ 90 s of no answer). */
export const LIVENESS_EVERY_SECONDS = 30;
export const LIVENESS_MISSES = 3;

/** plum-liveness.service: one check, as root (the control token is root's), sandboxed, no capabilities. */
export function livenessServiceUnit(p: InstallPaths): string {
  const current = currentLinkOf(p);
  return [
    "# Written by plumctl install: the agent's liveness check, run by plum-liveness.timer.",
    "[Unit]",
    "Description=Plum appliance: restart the agent when its control API stops answering",
    "After=plum.service",
    "",
    "[Service]",
    "Type=oneshot",
    ...Object.entries(installedEnvironment(p)).map(([k, v]) => `Environment=${k}=${v}`),
    `ExecStart=${nodeOf(current)} ${plumctlOf(current)} liveness-check --misses ${LIVENESS_MISSES} --restart`,
    "TimeoutStartSec=60",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "ProtectSystem=strict",
    `ReadWritePaths=${path.join(p.home, "run")}`,
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "",
  ].join("\n");
}

export function livenessTimerUnit(): string {
  return [
    "# Written by plumctl install.",
    "[Unit]",
    `Description=Plum appliance: liveness check of the agent every ${LIVENESS_EVERY_SECONDS} s`,
    "",
    "[Timer]",
    "OnActiveSec=60",
    `OnUnitActiveSec=${LIVENESS_EVERY_SECONDS}`,
    "AccuracySec=5s",
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
}
