import { QueryTypes, type Sequelize, type Transaction } from "sequelize";
import { ChainVerifier, chainHash, GENESIS_HASH, type ChainVerdict } from "../../lib/hash-chain.ts";

export interface AuditEvent {
  actor: string; // "user:alice", "agent", "system"
  action: string; // "login.success", "user.create", "instance.start", …
  target?: string;
  outcome?: "success" | "failure" | "denied";
  detail?: Record<string, unknown>;
}

export interface AuditRow {
  id: number;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  outcome: string;
  detail: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  from?: Date;
  to?: Date;
  beforeId?: number;
  limit?: number;
}

const CHAIN = "audit_log";

type DbRow = { id: string; at: Date; actor: string; action: string; target: string | null; outcome: string; detail: Record<string, unknown>; prev_hash: string; hash: string };

function toRow(r: DbRow): AuditRow {
  return { id: Number(r.id), at: r.at, actor: r.actor, action: r.action, target: r.target, outcome: r.outcome, detail: r.detail, prevHash: r.prev_hash, hash: r.hash };
}

/** What a row's hash covers. */
function hashed(row: Omit<AuditRow, "prevHash" | "hash">): Record<string, unknown> {
  return { id: row.id, at: row.at.toISOString(), actor: row.actor, action: row.action, target: row.target, outcome: row.outcome, detail: row.detail };
}

/** The append-only, hash-chained audit log in plum_ops. */
export class AuditLog {
  constructor(private readonly sequelize: Sequelize) {}

  /** Append one event. Appends are serialised (advisory lock) so the chain has one order. */
  async append(event: AuditEvent, transaction?: Transaction): Promise<AuditRow> {
    const work = async (t: Transaction) => {
      await this.sequelize.query("select pg_advisory_xact_lock(hashtext(:chain))", { replacements: { chain: CHAIN }, transaction: t });
      const [head] = await this.sequelize.query<{ last_id: string; last_hash: string }>("select last_id, last_hash from hash_chain_heads where chain = :chain", { replacements: { chain: CHAIN }, type: QueryTypes.SELECT, transaction: t });
      const prevHash = head?.last_hash ?? GENESIS_HASH;
      const base = {
        id: Number(head?.last_id ?? 0) + 1,
        at: new Date(),
        actor: event.actor,
        action: event.action,
        target: event.target ?? null,
        outcome: event.outcome ?? "success",
        detail: event.detail ?? {},
      };
      const hash = chainHash(prevHash, hashed(base));
      await this.sequelize.query(
        "insert into audit_log (id, at, actor, action, target, outcome, detail, prev_hash, hash) values (:id, :at, :actor, :action, :target, :outcome, :detail, :prevHash, :hash)",
        { replacements: { ...base, detail: JSON.stringify(base.detail), prevHash, hash }, transaction: t },
      );
      await this.sequelize.query(
        "insert into hash_chain_heads (chain, last_id, last_hash) values (:chain, :id, :hash) on conflict (chain) do update set last_id = excluded.last_id, last_hash = excluded.last_hash",
        { replacements: { chain: CHAIN, id: base.id, hash }, transaction: t },
      );
      return { ...base, prevHash, hash };
    };
    return transaction ? work(transaction) : this.sequelize.transaction(work);
  }

  async list(filter: AuditFilter = {}): Promise<AuditRow[]> {
    const where: string[] = [];
    const replacements: Record<string, unknown> = { limit: Math.min(filter.limit ?? 50, 100_000) };
    if (filter.actor) (where.push("actor ilike :actor"), (replacements.actor = `%${filter.actor}%`));
    if (filter.action) (where.push("action like :action"), (replacements.action = `${filter.action}%`));
    if (filter.from) (where.push("at >= :from"), (replacements.from = filter.from));
    if (filter.to) (where.push("at < :to"), (replacements.to = filter.to));
    if (filter.beforeId) (where.push("id < :beforeId"), (replacements.beforeId = filter.beforeId));
    const rows = await this.sequelize.query<DbRow>(
      `select * from audit_log ${where.length ? `where ${where.join(" and ")}` : ""} order by id desc limit :limit`,
      { replacements, type: QueryTypes.SELECT },
    );
    return rows.map(toRow);
  }

  /** Walk the whole chain in id order; the verdict names the first bad row. */
  async verify(pageSize = 2000): Promise<ChainVerdict> {
    const verifier = new ChainVerifier();
    let after = 0;
    for (;;) {
      const page = await this.sequelize.query<DbRow>("select * from audit_log where id > :after order by id limit :limit", { replacements: { after, limit: pageSize }, type: QueryTypes.SELECT });
      if (page.length === 0) break;
      const ok = verifier.feed(page.map(toRow).map((r) => ({ id: r.id, prevHash: r.prevHash, hash: r.hash, record: hashed(r) })));
      if (!ok) break;
      after = Number(page[page.length - 1].id);
    }
    const [head] = await this.sequelize.query<{ last_id: string; last_hash: string }>("select last_id, last_hash from hash_chain_heads where chain = :chain", { replacements: { chain: CHAIN }, type: QueryTypes.SELECT });
    return verifier.finish(head ? { lastId: Number(head.last_id), lastHash: head.last_hash } : undefined);
  }
}
