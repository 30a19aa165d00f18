import type { AnchoredVerdict } from "../lib/chain-anchors.ts";
import type { ChainVerdict } from "../lib/hash-chain.ts";

/** A hash chain's verdict for a terminal (or as JSON); a broken chain makes the command exit 1. */
export function printChainVerdict(label: string, verdict: ChainVerdict, json?: boolean): void {
  if (json) process.stdout.write(JSON.stringify(verdict) + "\n");
  else if (verdict.ok) process.stdout.write(`${label} verified: ${verdict.checked} rows, chain intact\n`);
  else process.stdout.write(`${label} BROKEN at row ${verdict.firstBad!.id}: ${verdict.firstBad!.reason}\n`);
  if (!verdict.ok) process.exitCode = 1;
}

/**
 * A chain checked against its signed checkpoints: its own links, then the newest anchor (a chain recomputed
 * in the database verifies on its own but no longer matches it), then the anchor file. Exit 1 on any problem.
 */
export function printAnchoredVerdict(label: string, verdict: AnchoredVerdict, json?: boolean): void {
  if (!verdict.ok) process.exitCode = 1;
  if (json) {
    // `checked` and `firstBad` at the top, where scripts found them before the anchors came.
    process.stdout.write(JSON.stringify({ checked: verdict.chain.checked, firstBad: verdict.chain.firstBad, ...verdict }) + "\n");
    return;
  }
  const { chain, anchors, file } = verdict;
  if (!chain.ok) process.stdout.write(`${label} BROKEN at row ${chain.firstBad!.id}: ${chain.firstBad!.reason}\n`);
  else if (!anchors.ok) process.stdout.write(`${label} REWRITTEN: ${anchors.message}\n`);
  else process.stdout.write(`${label} verified: ${chain.checked} rows, chain intact\n`);
  if (!chain.ok || anchors.ok) process.stdout.write(`  anchors: ${anchors.message}\n`);
  if (file.problems.length)
    process.stdout.write(
      `anchor file ${file.file} does NOT verify (${file.problems.length} problem${file.problems.length === 1 ? "" : "s"}):\n${file.problems.map((p) => `  - ${p}\n`).join("")}`,
    );
}
