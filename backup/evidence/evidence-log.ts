import type { Sequelize, Transaction } from "sequelize";
import { HashChainedLog, type ChainedRow } from "../../lib/hash-chained-log.ts";
import type { ChainVerdict } from "../../lib/hash-chain.ts";

export const EVIDENCE_KINDS = ["backup", "copy", "check", "forget", "restore", "drill"] as const;
export type EvidenceKind = (typeof EVIDENCE_KINDS)[number];

type EvidenceColumns = {
  kind: EvidenceKind;
  outcome: "success" | "failure";
  set_id: string | null;
  repository: string | null;
  detail: Record<string, unknown>;
};
export type EvidenceRow = ChainedRow<EvidenceColumns>;

export interface EvidenceEntry {
  kind: EvidenceKind;
  outcome: "success" | "failure";
  setId?: string;
  repository?: "primary" | "secondary";
  /** Times, sizes, snapshot ids, measured RTO, errors: what an auditor needs to see, never a secret. */
  detail: Record<string, unknown>;
}

/**
 * The evidence log: one hash-chained record for every backup, copy, check, forget/prune, restore and drill
 * (same scheme as the audit log). Exports are built from it and signed.
 */
export class EvidenceLog {
  readonly chain: HashChainedLog<EvidenceColumns>;
  constructor(sequelize: Sequelize) {
    this.chain = new HashChainedLog<EvidenceColumns>(sequelize, {
      table: "backup_evidence",
      chain: "backup_evidence",
      columns: ["kind", "outcome", "set_id", "repository", "detail"],
      jsonColumns: ["detail"],
    });
  }

  record(entry: EvidenceEntry, transaction?: Transaction): Promise<EvidenceRow> {
    return this.chain.append(
      { kind: entry.kind, outcome: entry.outcome, set_id: entry.setId ?? null, repository: entry.repository ?? null, detail: entry.detail },
      transaction,
    );
  }

  list(filter: { kind?: EvidenceKind; limit?: number } = {}): Promise<EvidenceRow[]> {
    return this.chain.list(filter.kind ? ["kind = :kind"] : [], { kind: filter.kind }, filter.limit ?? 100);
  }

  between(from: Date, to: Date): Promise<EvidenceRow[]> {
    return this.chain.between(from, to);
  }

  verify(): Promise<ChainVerdict> {
    return this.chain.verify();
  }
}
