import type { Sequelize, Transaction } from "sequelize";
import { takeAnchor, verifyAnchoredChain, type AnchoredVerdict, type AnchorReason, type AnchorSettings, type ChainAnchor } from "../../lib/chain-anchors.ts";
import type { ChainVerdict } from "../../lib/hash-chain.ts";
import { HashChainedLog, type ChainedRow } from "../../lib/hash-chained-log.ts";

export interface AuditEvent {
  actor: string; // "user:alice", "agent", "system"
  action: string; // "login.success", "user.create", "instance.start", …
  target?: string;
  outcome?: "success" | "failure" | "denied";
  detail?: Record<string, unknown>;
}

type AuditColumns = { actor: string; action: string; target: string | null; outcome: string; detail: Record<string, unknown> };
export type AuditRow = ChainedRow<AuditColumns>;

export interface AuditFilter {
  actor?: string;
  action?: string;
  from?: Date;
  to?: Date;
  beforeId?: number;
  limit?: number;
}

/**
 * The append-only, hash-chained audit log in plum_ops. With `anchors` (the anchor file and the appliance key) it
 * can also be checked against its signed checkpoints outside the database, and checkpointed on an export.
 */
export class AuditLog {
  private readonly log: HashChainedLog<AuditColumns>;
  constructor(
    sequelize: Sequelize,
    private readonly anchors?: AnchorSettings,
  ) {
    this.log = new HashChainedLog<AuditColumns>(sequelize, {
      table: "audit_log",
      chain: "audit_log",
      columns: ["actor", "action", "target", "outcome", "detail"],
      jsonColumns: ["detail"],
    });
  }

  append(event: AuditEvent, transaction?: Transaction): Promise<AuditRow> {
    return this.log.append(
      { actor: event.actor, action: event.action, target: event.target ?? null, outcome: event.outcome ?? "success", detail: event.detail ?? {} },
      transaction,
    );
  }

  list(filter: AuditFilter = {}): Promise<AuditRow[]> {
    const where: string[] = [];
    const replacements: Record<string, unknown> = {};
    if (filter.actor) {
      where.push("actor ilike :actor");
      replacements.actor = `%${filter.actor}%`;
    }
    if (filter.action) {
      where.push("action like :action");
      replacements.action = `${filter.action}%`;
    }
    if (filter.from) {
      where.push("at >= :from");
      replacements.from = filter.from;
    }
    if (filter.to) {
      where.push("at < :to");
      replacements.to = filter.to;
    }
    if (filter.beforeId) {
      where.push("id < :beforeId");
      replacements.beforeId = filter.beforeId;
    }
    return this.log.list(where, replacements, Math.min(filter.limit ?? 50, 100_000));
  }

  verify(): Promise<ChainVerdict> {
    return this.log.verify();
  }

  /** The chain's own links, its agreement with the newest checkpoint, and the anchor file's integrity. */
  verifyAnchored(): Promise<AnchoredVerdict> {
    if (!this.anchors) throw new Error("this audit log was opened without its anchor file");
    return verifyAnchoredChain(this.log, this.anchors);
  }

  /** Sign the chain's head into the anchor file now (an export does: what it hands out is then anchored). */
  checkpoint(reason: AnchorReason): Promise<ChainAnchor | undefined> {
    if (!this.anchors) throw new Error("this audit log was opened without its anchor file");
    return takeAnchor({ log: this.log, settings: this.anchors, reason });
  }
}
