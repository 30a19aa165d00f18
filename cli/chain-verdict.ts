import type { ChainVerdict } from "../lib/hash-chain.ts";

/** A hash chain's verdict for a terminal (or as JSON); a broken chain makes the command exit 1. */
export function printChainVerdict(label: string, verdict: ChainVerdict, json?: boolean): void {
  if (json) process.stdout.write(JSON.stringify(verdict) + "\n");
  else if (verdict.ok) process.stdout.write(`${label} verified: ${verdict.checked} rows, chain intact\n`);
  else process.stdout.write(`${label} BROKEN at row ${verdict.firstBad!.id}: ${verdict.firstBad!.reason}\n`);
  if (!verdict.ok) process.exitCode = 1;
}
