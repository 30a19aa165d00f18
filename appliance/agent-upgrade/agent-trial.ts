import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { homeLayout } from "../../lib/paths.ts";

/**
 * An agent upgrade on trial, and how it ended. The files are key=value lines because the agent guard
 * (installer/agent-guard.ts, plain sh outside every release) reads and writes them too:
 *   PLUM_HOME/run/agent-trial      from, to, upgrade (its journal id), started, starts (the guard counts them)
 *   PLUM_HOME/run/agent-rollback   written by the guard when it switched back: from (the failed), to, reason, at
 * The new agent ends its trial once it serves (`trialDone`); the previous agent, started again by the guard,
 * records the rollback (`rollbackToRecord`).
 */
export interface AgentTrial {
  from: string;
  to: string;
  upgrade: number;
  started: string;
  starts: number;
}

export interface AgentRollback {
  /** The agent version that failed. */
  from: string;
  /** The version the guard switched back to. */
  to: string;
  upgrade?: number;
  reason: string;
  at: string;
}

export const agentTrialFile = (home: string) => path.join(homeLayout(home).runDir, "agent-trial");
export const agentRollbackFile = (home: string) => path.join(homeLayout(home).runDir, "agent-rollback");

/** key=value lines as the guard writes them (no quoting: versions, numbers, ISO times and a sentence without newlines). */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0 && !(line.slice(0, eq) in out)) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export function trialText(t: AgentTrial): string {
  return `from=${t.from}\nto=${t.to}\nupgrade=${t.upgrade}\nstarted=${t.started}\nstarts=${t.starts}\n`;
}

export function parseTrial(text: string): AgentTrial | undefined {
  const kv = parseKeyValues(text);
  if (!kv.from || !kv.to) return undefined;
  return { from: kv.from, to: kv.to, upgrade: Number(kv.upgrade) || 0, started: kv.started ?? "", starts: Number(kv.starts) || 0 };
}

export function parseRollback(text: string): AgentRollback | undefined {
  const kv = parseKeyValues(text);
  if (!kv.from || !kv.to) return undefined;
  return { from: kv.from, to: kv.to, upgrade: Number(kv.upgrade) || undefined, reason: kv.reason ?? "the new agent did not come up", at: kv.at ?? "" };
}

/** Put the new agent on trial (before `current` is switched to it): the guard judges its starts from now. */
export function writeTrial(home: string, trial: AgentTrial): void {
  const file = agentTrialFile(home);
  writeFileSync(`${file}.tmp`, trialText(trial), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function removeTrial(home: string): void {
  rmSync(agentTrialFile(home), { force: true });
}

function read<T>(file: string, parse: (text: string) => T | undefined): T | undefined {
  return existsSync(file) ? parse(readFileSync(file, "utf8")) : undefined;
}

/**
 * What the agent of `version`, now serving, must record at its start: the end of its own trial (it came up), or
 * the rollback the guard made to it from a newer agent that did not. Undefined: neither concerns it.
 */
export function trialOutcomeFor(
  home: string,
  version: string,
): { kind: "done"; trial: AgentTrial } | { kind: "rolled-back"; rollback: AgentRollback } | undefined {
  const trial = read(agentTrialFile(home), parseTrial);
  if (trial && trial.to === version) return { kind: "done", trial };
  const rollback = read(agentRollbackFile(home), parseRollback);
  if (rollback && rollback.to === version) return { kind: "rolled-back", rollback };
  return undefined;
}

/** The outcome is recorded: its file goes. */
export function clearTrialOutcome(home: string, kind: "done" | "rolled-back"): void {
  rmSync(kind === "done" ? agentTrialFile(home) : agentRollbackFile(home), { force: true });
}
