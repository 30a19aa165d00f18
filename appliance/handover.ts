import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";

/**
 * How long a handed-over instance serves on without an agent's claim: the next agent's whole start (ops
 * migrations, restore recovery) fits in it; an instance nobody claims by then stops on its own.
 */
export const HANDOVER_GRACE_MS = 180_000;

/**
 * PLUM_HOME/run/handover.json: what an agent that stopped for a handover left running for the next agent to
 * adopt. Only these are adopted; anything else found running is an orphan of a killed agent and is stopped.
 */
const handoverSchema = z.object({
  at: z.string(),
  fromPid: z.number().int(),
  fromVersion: z.string(),
  instances: z.array(z.string()),
  postgres: z.number().int().optional(),
});
export type Handover = z.infer<typeof handoverSchema>;

const fileOf = (runDir: string) => path.join(runDir, "handover.json");

export function readHandover(runDir: string): Handover | undefined {
  const file = fileOf(runDir);
  if (!existsSync(file)) return undefined;
  try {
    return handoverSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch {
    return undefined; // unreadable: adopt nothing, which stops what runs (safe, only slower)
  }
}

export function writeHandover(runDir: string, handover: Handover): void {
  const file = fileOf(runDir);
  writeFileSync(`${file}.tmp`, JSON.stringify(handover, null, 2) + "\n", { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** Done with it: the next agent started (what it did not adopt, it stopped). */
export function clearHandover(runDir: string): void {
  rmSync(fileOf(runDir), { force: true });
}
