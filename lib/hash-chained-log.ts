import { EventEmitter } from "node:events";
import { QueryTypes, Transaction, type Sequelize } from "sequelize";
import { ChainVerifier, chainHash, GENESIS_HASH, type ChainVerdict } from "./hash-chain.ts";

/** A row as stored: the entry's columns plus id, time and the chain's two hashes. */
export type ChainedRow<E> = E & { id: number; at: Date; prevHash: string; hash: string };

/** What `chainEvents(sequelize)` reports: each committed append (and each checkpoint, see chain-anchors.ts). */
export interface ChainEventMap {
  append: [chain: string, row: ChainedRow<Record<string, unknown>>];
  anchor: [anchor: Checkpoint];
  /** A checkpoint refused: the chain no longer holds the row its last anchor signed. */
  rewrite: [chain: string, message: string];
}

/** A signed checkpoint of a chain, as the anchor file holds it (chain-anchors.ts has the whole line). */
export interface Checkpoint extends ChainHead {
  seq: number;
  chain: string;
  at: string;
  reason: string;
}

const EVENTS = new WeakMap<Sequelize, EventEmitter<ChainEventMap>>();

/**
 * The appends and checkpoints of every hash-chained log on one connection pool, once committed: the agent
 * counts rows for its checkpoints and forwards audit events to syslog from here, so no log needs to know
 * who watches it. Listeners run synchronously and must not throw; a listener's error never reaches the appender.
 */
export function chainEvents(sequelize: Sequelize): EventEmitter<ChainEventMap> {
  let events = EVENTS.get(sequelize);
  if (!events) EVENTS.set(sequelize, (events = new EventEmitter<ChainEventMap>()));
  return events;
}

/** Tell the listeners of `sequelize`, if any; a listener that throws is ignored (the append has happened). */
export function emitChainEvent<K extends keyof ChainEventMap>(sequelize: Sequelize, event: K, ...args: ChainEventMap[K]): void {
  const events = EVENTS.get(sequelize);
  if (!events) return;
  for (const listener of events.listeners(event) as Array<(...a: ChainEventMap[K]) => void>) {
    try {
      listener(...args);
    } catch {
      // a watcher's failure is its own: the row is committed whatever it does
    }
  }
}

/** The newest row of a chain as hash_chain_heads holds it (committed rows only). */
export interface ChainHead {
  lastId: number;
  lastHash: string;
}

/**
 * An append-only table whose rows form a hash chain (each row carries the hash of the one before; the
 * chain's head is kept in hash_chain_heads). Appends are serialised with an advisory lock so the chain has
 * one order. The audit log and the backup evidence log are two of these.
 */
export class HashChainedLog<E extends Record<string, unknown>> {
  constructor(
    readonly sequelize: Sequelize,
    private readonly opts: { table: string; chain: string; columns: Array<keyof E & string>; jsonColumns?: Array<keyof E & string> },
  ) {}

  /** The chain's name in hash_chain_heads and in the anchor file. */
  get chain(): string {
    return this.opts.chain;
  }

  private hashed(row: { id: number; at: Date } & Record<string, unknown>): Record<string, unknown> {
    const record: Record<string, unknown> = { id: row.id, at: row.at.toISOString() };
    for (const c of this.opts.columns) record[c] = row[c] ?? null;
    return record;
  }

  private fromDb(r: Record<string, unknown>): ChainedRow<E> {
    const row: Record<string, unknown> = { id: Number(r.id), at: r.at, prevHash: r.prev_hash, hash: r.hash };
    for (const c of this.opts.columns) row[c] = r[c];
    return row as ChainedRow<E>;
  }

  async append(entry: E, transaction?: Transaction): Promise<ChainedRow<E>> {
    const { table, chain, columns } = this.opts;
    const work = async (t: Transaction) => {
      await this.sequelize.query("select pg_advisory_xact_lock(hashtext(:chain))", { replacements: { chain }, transaction: t });
      const [head] = await this.sequelize.query<{ last_id: string; last_hash: string }>(
        "select last_id, last_hash from hash_chain_heads where chain = :chain",
        { replacements: { chain }, type: QueryTypes.SELECT, transaction: t },
      );
      const prevHash = head?.last_hash ?? GENESIS_HASH;
      const base: Record<string, unknown> = { id: Number(head?.last_id ?? 0) + 1, at: new Date() };
      for (const c of columns) base[c] = entry[c] ?? null;
      const hash = chainHash(prevHash, this.hashed(base as { id: number; at: Date }));
      const values: Record<string, unknown> = { ...base, prev_hash: prevHash, hash };
      for (const c of this.opts.jsonColumns ?? []) values[c] = JSON.stringify(values[c] ?? {});
      const names = ["id", "at", ...columns, "prev_hash", "hash"];
      await this.sequelize.query(`insert into ${table} (${names.join(", ")}) values (${names.map((n) => `:${n}`).join(", ")})`, {
        replacements: values,
        transaction: t,
      });
      await this.sequelize.query(
        "insert into hash_chain_heads (chain, last_id, last_hash) values (:chain, :id, :hash) on conflict (chain) do update set last_id = excluded.last_id, last_hash = excluded.last_hash",
        { replacements: { chain, id: base.id, hash }, transaction: t },
      );
      return { ...(base as object), prevHash, hash } as ChainedRow<E>;
    };
    const notify = (row: ChainedRow<E>) => emitChainEvent(this.sequelize, "append", chain, row as ChainedRow<Record<string, unknown>>);
    if (!transaction) {
      const row = await this.sequelize.transaction(work);
      notify(row);
      return row;
    }
    const row = await work(transaction);
    transaction.afterCommit(() => notify(row));
    return row;
  }

  /** The committed head of the chain; undefined before its first row. */
  async head(transaction?: Transaction): Promise<ChainHead | undefined> {
    const [head] = await this.sequelize.query<{ last_id: string; last_hash: string }>("select last_id, last_hash from hash_chain_heads where chain = :chain", {
      replacements: { chain: this.opts.chain },
      type: QueryTypes.SELECT,
      transaction,
    });
    return head ? { lastId: Number(head.last_id), lastHash: head.last_hash } : undefined;
  }

  /** How many rows the table holds now. */
  async count(): Promise<number> {
    const [row] = await this.sequelize.query<{ n: string }>(`select count(*) as n from ${this.opts.table}`, { type: QueryTypes.SELECT });
    return Number(row.n);
  }

  /** The stored hash of each of `ids` that exists (to compare with checkpoints). */
  async hashesOf(ids: number[]): Promise<Map<number, string>> {
    if (ids.length === 0) return new Map();
    const rows = await this.sequelize.query<{ id: string; hash: string }>(`select id, hash from ${this.opts.table} where id in (:ids)`, {
      replacements: { ids },
      type: QueryTypes.SELECT,
    });
    return new Map(rows.map((r) => [Number(r.id), r.hash]));
  }

  /** Rows matching `where` (SQL over the table's columns, with named replacements), newest first. */
  async list(where: string[], replacements: Record<string, unknown>, limit: number): Promise<Array<ChainedRow<E>>> {
    const rows = await this.sequelize.query<Record<string, unknown>>(
      `select * from ${this.opts.table} ${where.length ? `where ${where.join(" and ")}` : ""} order by id desc limit :limit`,
      {
        replacements: { ...replacements, limit },
        type: QueryTypes.SELECT,
      },
    );
    return rows.map((r) => this.fromDb(r));
  }

  /** Rows in id order within [from, to), for exports. */
  async between(from: Date, to: Date): Promise<Array<ChainedRow<E>>> {
    const rows = await this.sequelize.query<Record<string, unknown>>(`select * from ${this.opts.table} where at >= :from and at < :to order by id`, {
      replacements: { from, to },
      type: QueryTypes.SELECT,
    });
    return rows.map((r) => this.fromDb(r));
  }

  /** The hashed record of a row: what its hash covers (for offline verification of exports). */
  hashedRecord(row: ChainedRow<E>): Record<string, unknown> {
    return this.hashed(row as unknown as { id: number; at: Date } & Record<string, unknown>);
  }

  /** Walk the whole chain in id order; the verdict names the first bad row. */
  async verify(pageSize = 2000): Promise<ChainVerdict> {
    // One snapshot for the rows and the head: a row appended while the pages are read is in neither (read
    // apart, it would be in the head and not in the rows read, which looks like a row gone missing).
    return this.sequelize.transaction({ isolationLevel: Transaction.ISOLATION_LEVELS.REPEATABLE_READ }, async (transaction) => {
      const verifier = new ChainVerifier();
      let after = 0;
      for (;;) {
        const page = await this.sequelize.query<Record<string, unknown>>(`select * from ${this.opts.table} where id > :after order by id limit :limit`, {
          replacements: { after, limit: pageSize },
          type: QueryTypes.SELECT,
          transaction,
        });
        if (page.length === 0) break;
        const rows = page.map((r) => this.fromDb(r));
        if (!verifier.feed(rows.map((r) => ({ id: r.id, prevHash: r.prevHash, hash: r.hash, record: this.hashedRecord(r) })))) break;
        after = rows[rows.length - 1].id;
      }
      return verifier.finish(await this.head(transaction));
    });
  }
}
