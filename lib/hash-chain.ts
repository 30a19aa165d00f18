import { createHash } from "node:crypto";

/**
 * Hash chains: each record carries the hash of the one before it, and a head row names the newest.
 * Editing, deleting or reordering any record — including the newest — breaks verification.
 * Used by the audit log and (later) the backup catalogue.
 */
export const GENESIS_HASH = "0".repeat(64);

/** JSON with object keys sorted at every depth, so the same record always hashes the same way. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

export function chainHash(prevHash: string, record: Record<string, unknown>): string {
  return createHash("sha256").update(prevHash).update("\n").update(canonicalJson(record)).digest("hex");
}

export interface ChainedRow {
  id: number;
  prevHash: string;
  hash: string;
  /** Everything that is hashed (id included). */
  record: Record<string, unknown>;
}

export interface ChainVerdict {
  ok: boolean;
  checked: number;
  firstBad?: { id: number; reason: string };
}

/**
 * Verify rows given in id order, page by page. `head` is the newest id and hash recorded beside the chain.
 * Stops at the first bad row and names it.
 */
export class ChainVerifier {
  private prevHash = GENESIS_HASH;
  private prevId = 0;
  private checked = 0;
  private bad?: { id: number; reason: string };

  feed(rows: ChainedRow[]): boolean {
    for (const row of rows) {
      if (this.bad) return false;
      this.checked++;
      if (row.id !== this.prevId + 1) {
        this.bad = {
          id: row.id,
          reason: `row ${row.id} follows row ${this.prevId}: ${row.id <= this.prevId ? "rows are out of order" : `row${row.id - this.prevId > 2 ? "s" : ""} ${this.prevId + 1}${row.id - this.prevId > 2 ? `–${row.id - 1}` : ""} deleted`}`,
        };
      } else if (row.prevHash !== this.prevHash) {
        this.bad = { id: row.id, reason: `row ${row.id} does not link to row ${this.prevId} (a row was deleted, inserted or reordered)` };
      } else if (chainHash(row.prevHash, row.record) !== row.hash) {
        this.bad = { id: row.id, reason: `row ${row.id} was edited: its content does not match its hash` };
      }
      this.prevHash = row.hash;
      this.prevId = row.id;
    }
    return !this.bad;
  }

  finish(head: { lastId: number; lastHash: string } | undefined): ChainVerdict {
    if (!this.bad) {
      const lastId = head?.lastId ?? 0;
      if (lastId !== this.prevId || (head && head.lastHash !== this.prevHash)) {
        this.bad = {
          id: lastId > this.prevId ? this.prevId + 1 : this.prevId,
          reason:
            lastId > this.prevId
              ? `${lastId === this.prevId + 1 ? `row ${lastId} is` : `rows ${this.prevId + 1}–${lastId} are`} missing: the chain's head says it ends at row ${lastId}`
              : `the chain's head (row ${lastId}) does not match its newest row ${this.prevId}`,
        };
      }
    }
    return { ok: !this.bad, checked: this.checked, firstBad: this.bad };
  }
}
