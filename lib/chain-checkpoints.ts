import { existsSync, readFileSync } from "node:fs";
import { QueryTypes, type Sequelize } from "sequelize";
import { ANCHOR_HEAD, takeAnchor, verifyAnchorText, type AnchorReason, type AnchorSettings, type ChainAnchor } from "./chain-anchors.ts";
import { chainEvents, emitChainEvent, type ChainHead } from "./hash-chained-log.ts";
import type { Logger } from "./logger.ts";

/**
 * One chain's log as seen through hash_chain_heads (every hash-chained log of plum_ops has a head there, and
 * is named after its table).
 */
function headOf(sequelize: Sequelize, chain: string) {
  return {
    sequelize,
    chain,
    async head(): Promise<ChainHead | undefined> {
      const [h] = await sequelize.query<{ last_id: string; last_hash: string }>("select last_id, last_hash from hash_chain_heads where chain = :chain", {
        replacements: { chain },
        type: QueryTypes.SELECT,
      });
      return h ? { lastId: Number(h.last_id), lastHash: h.last_hash } : undefined;
    },
    async hashOf(id: number): Promise<string | undefined> {
      const [row] = await sequelize.query<{ hash: string }>(`select hash from ${chain} where id = :id`, { replacements: { id }, type: QueryTypes.SELECT });
      return row?.hash;
    },
  };
}

/**
 * The agent's checkpoints: every hash-chained log in plum_ops (audit log, evidence, upgrade and restore
 * journals) is anchored every `everyRows` rows appended through this connection, every `everySeconds` when it
 * moved (rows plumctl appended included), at start and at stop. A checkpoint that fails is logged and retried
 * at the next occasion; it never fails an append.
 */
export class ChainCheckpoints {
  private readonly anchored = new Map<string, ChainHead>();
  private queue: Promise<unknown> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  /** Chains with a row-count checkpoint queued: the appends meanwhile are covered by it. */
  private readonly due = new Set<string>();
  /** Chains found rewritten: not anchored again. */
  private readonly rewritten = new Set<string>();
  private readonly onAppend = (chain: string, row: { id: number }) => {
    const last = this.anchored.get(chain)?.lastId ?? 0;
    if (row.id - last < this.opts.everyRows || this.due.has(chain)) return;
    this.due.add(chain);
    void this.checkpoint(chain, "rows").finally(() => this.due.delete(chain));
  };

  constructor(private readonly opts: { sequelize: Sequelize; settings: AnchorSettings; everyRows: number; everySeconds: number; log: Logger }) {}

  /** Learn what is anchored already, anchor what moved while the agent was away, then watch. */
  async start(): Promise<void> {
    const { file, keys } = this.opts.settings;
    const text = existsSync(file) ? readFileSync(file, "utf8") : "";
    const verdict = verifyAnchorText(file, text, keys.publicKeyPem);
    for (const a of verdict.anchors) this.anchored.set(a.chain, { lastId: a.lastId, lastHash: a.lastHash });
    if (verdict.problems.length)
      this.opts.log.warn({ file, problems: verdict.problems }, "the anchor file does not verify: `plumctl audit verify` names what is wrong");
    await this.sweep("start");
    chainEvents(this.opts.sequelize).on("append", this.onAppend);
    this.timer = setInterval(() => void this.sweep("interval"), this.opts.everySeconds * 1000);
    this.timer.unref();
  }

  /** Anchor every chain whose head moved since its last anchor. */
  sweep(reason: AnchorReason): Promise<void> {
    return this.serial(async () => {
      const heads = await this.opts.sequelize.query<{ chain: string }>("select chain from hash_chain_heads where chain <> :skip order by chain", {
        replacements: { skip: ANCHOR_HEAD },
        type: QueryTypes.SELECT,
      });
      for (const { chain } of heads) await this.take(chain, reason, true);
    });
  }

  /** Anchor one chain now (an export does this: the file it writes then carries a checkpoint of its head). */
  checkpoint(chain: string, reason: AnchorReason): Promise<ChainAnchor | undefined> {
    return this.serial(() => this.take(chain, reason, reason !== "export"));
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    chainEvents(this.opts.sequelize).off("append", this.onAppend);
    await this.sweep("stop");
  }

  private serial<T>(work: () => Promise<T>): Promise<T | undefined> {
    const run = this.queue.then(work).catch((err: Error) => {
      this.opts.log.warn({ err: err.message }, "a checkpoint of the hash chains failed; the next one will cover its rows");
      return undefined;
    });
    this.queue = run;
    return run;
  }

  private async take(chain: string, reason: AnchorReason, onlyIfMoved: boolean): Promise<ChainAnchor | undefined> {
    const known = this.anchored.get(chain);
    const log = headOf(this.opts.sequelize, chain);
    if (known && (await log.hashOf(known.lastId)) !== known.lastHash) {
      // Never sign a rewritten chain: that would bless it. The alarm stands until someone looks.
      if (!this.rewritten.has(chain)) {
        this.rewritten.add(chain);
        const message = `${chain} no longer holds row ${known.lastId} as its last checkpoint signed it: the chain was rewritten in the database; no further checkpoint of it is taken`;
        this.opts.log.error({ chain, lastId: known.lastId }, message);
        emitChainEvent(this.opts.sequelize, "rewrite", chain, message);
      }
      return undefined;
    }
    const anchor = await takeAnchor({
      log,
      settings: this.opts.settings,
      reason,
      unless: (head) => onlyIfMoved && !!known && known.lastId === head.lastId && known.lastHash === head.lastHash,
    });
    if (anchor) this.anchored.set(chain, { lastId: anchor.lastId, lastHash: anchor.lastHash });
    return anchor;
  }
}
