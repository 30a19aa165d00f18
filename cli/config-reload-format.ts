import { reloadRuleFor, type ReloadOutcome } from "../appliance/config-reload.ts";

/** What a reload did, for a terminal: the keys applied, then each key waiting for a restart and why. */
export function describeReload(outcome: ReloadOutcome): string {
  if (outcome.applied.length === 0 && outcome.restartNeeded.length === 0) return "configuration reloaded: nothing changed\n";
  const lines = [`configuration reloaded: applied ${outcome.applied.join(", ") || "nothing"}`];
  if (outcome.restartNeeded.length > 0) {
    lines.push(`needs a restart of the agent to take effect (unchanged until then): ${outcome.restartNeeded.join(", ")}`);
    for (const key of outcome.restartNeeded) lines.push(`  ${key}: ${reloadRuleFor(key).why}`);
  }
  return lines.join("\n") + "\n";
}
