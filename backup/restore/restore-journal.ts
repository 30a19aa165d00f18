import { QueryTypes, UniqueConstraintError, type Sequelize } from "sequelize";
import { PlumError } from "../../lib/errors.ts";
import type { ChainVerdict } from "../../lib/hash-chain.ts";
import { HashChainedLog } from "../../lib/hash-chained-log.ts";
import type { RepositoryRole } from "../backup-types.ts";

export type RestoreKind = "production" | "copy" | "drill";
export type RestoreStatus = "running" | "succeeded" | "failed";
export type JournalPhase = "started" | "done" | "failed" | "note";

/**
 * Every database and folder a restore makes, keeps or swaps, written before the first of them exists, so a
 * restarted agent knows what to look for. Production: `live` is swapped with `database` (the verified copy),
 * the old one parked as `keptDatabase`; the files directory `filesDir` with `restoredFiles` (below
 * `filesTarget`), the old one parked as `keptFiles` (null when there was no files directory to keep).
 * Copy: `database`. Drill: `database` and `filesTarget`.
 */
export interface RestoreNames {
  live?: string;
  database?: string;
  keptDatabase?: string;
  filesDir?: string;
  filesTarget?: string;
  restoredFiles?: string;
  keptFiles?: string | null;
}

export interface RestoreRecovery {
  by: string;
  action: "undone" | "finished";
  at: string;
  interruptedAt: string;
}

export interface RestoreRow {
  id: number;
  kind: RestoreKind;
  setId: string | null;
  repository: RepositoryRole;
  parts: { db?: boolean; files?: boolean };
  status: RestoreStatus;
  step: string | null;
  names: RestoreNames;
  purpose: string | null;
  preRestoreSetId: string | null;
  requestedBy: string;
  startedAt: Date;
  finishedAt: Date | null;
  error: string | null;
  recovery: RestoreRecovery | null;
}

export interface JournalEntry {
  id: number;
  at: Date;
  step: string;
  phase: JournalPhase;
  detail: Record<string, unknown>;
}

const COLUMNS: Record<keyof RestoreRow, string> = {
  id: "id",
  kind: "kind",
  setId: "set_id",
  repository: "repository",
  parts: "parts",
  status: "status",
  step: "step",
  names: "names",
  purpose: "purpose",
  preRestoreSetId: "pre_restore_set_id",
  requestedBy: "requested_by",
  startedAt: "started_at",
  finishedAt: "finished_at",
  error: "error",
  recovery: "recovery",
};
const JSON_COLUMNS = new Set<keyof RestoreRow>(["parts", "names", "recovery"]);

function fromRow(r: Record<string, unknown>): RestoreRow {
  const out: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(COLUMNS)) out[key] = r[column];
  return out as unknown as RestoreRow;
}

type JournalColumns = { restore_id: number; step: string; phase: string; detail: Record<string, unknown> };

/**
 * The restores table and the hash-chained restore journal in plum_ops: what a restore is doing, step by step,
 * written before and after each step, so that a crash at any instant leaves enough to finish or undo it.
 */
export class RestoreJournal {
  private readonly log: HashChainedLog<JournalColumns>;
  constructor(private readonly sequelize: Sequelize) {
    this.log = new HashChainedLog<JournalColumns>(sequelize, {
      table: "restore_journal",
      chain: "restore_journal",
      columns: ["restore_id", "step", "phase", "detail"],
      jsonColumns: ["detail"],
    });
  }

  async create(input: {
    kind: RestoreKind;
    setId?: string | null;
    repository: RepositoryRole;
    parts: RestoreRow["parts"];
    names: RestoreNames;
    purpose?: string;
    requestedBy: string;
  }): Promise<RestoreRow> {
    try {
      const [row] = await this.sequelize.query<Record<string, unknown>>(
        `insert into restores (kind, set_id, repository, parts, names, purpose, requested_by, status)
         values (:kind, :setId, :repository, :parts, :names, :purpose, :requestedBy, 'running') returning *`,
        {
          replacements: {
            ...input,
            setId: input.setId ?? null,
            purpose: input.purpose ?? null,
            parts: JSON.stringify(input.parts),
            names: JSON.stringify(input.names),
          },
          type: QueryTypes.SELECT,
        },
      );
      return fromRow(row);
    } catch (err) {
      if (err instanceof UniqueConstraintError) {
        const [active] = await this.unfinished("production");
        throw new PlumError(
          `restore ${active?.id ?? "?"} of set ${active?.setId ?? "?"} over production is not finished yet: one restore over production at a time`,
          {
            hint: "wait for it to end; if the agent was stopped during it, starting the agent (or `plumctl restore recover`) finishes or undoes it",
          },
        );
      }
      throw err;
    }
  }

  async get(id: number): Promise<RestoreRow | undefined> {
    const [row] = await this.sequelize.query<Record<string, unknown>>("select * from restores where id = :id", {
      replacements: { id },
      type: QueryTypes.SELECT,
    });
    return row && fromRow(row);
  }

  /** Restores not finished, oldest first (of one kind when asked). */
  async unfinished(kind?: RestoreKind): Promise<RestoreRow[]> {
    const rows = await this.sequelize.query<Record<string, unknown>>(
      `select * from restores where finished_at is null ${kind ? "and kind = :kind" : ""} order by id`,
      { replacements: { kind: kind ?? null }, type: QueryTypes.SELECT },
    );
    return rows.map(fromRow);
  }

  async history(limit = 50): Promise<RestoreRow[]> {
    const rows = await this.sequelize.query<Record<string, unknown>>("select * from restores order by id desc limit :limit", {
      replacements: { limit },
      type: QueryTypes.SELECT,
    });
    return rows.map(fromRow);
  }

  /** Change some columns; a finished status also sets finished_at (which frees the one-at-a-time index). */
  async update(id: number, changes: Partial<Omit<RestoreRow, "id" | "startedAt" | "finishedAt">>): Promise<RestoreRow> {
    const sets: string[] = [];
    const replacements: Record<string, unknown> = { id };
    for (const [key, value] of Object.entries(changes)) {
      sets.push(`${COLUMNS[key as keyof RestoreRow]} = :${key}`);
      replacements[key] = JSON_COLUMNS.has(key as keyof RestoreRow) ? JSON.stringify(value) : value;
    }
    if (changes.status && changes.status !== "running") sets.push("finished_at = now()");
    const [row] = await this.sequelize.query<Record<string, unknown>>(`update restores set ${sets.join(", ")} where id = :id returning *`, {
      replacements,
      type: QueryTypes.SELECT,
    });
    return fromRow(row);
  }

  /** One journal entry; a `started` entry also moves the restore's `step`. */
  async note(restoreId: number, step: string, phase: JournalPhase, detail: Record<string, unknown> = {}): Promise<void> {
    await this.log.append({ restore_id: restoreId, step, phase, detail });
    if (phase === "started") await this.sequelize.query("update restores set step = :step where id = :restoreId", { replacements: { step, restoreId } });
  }

  /** Run one step between its `started` and `done` entries; a throw is journaled as `failed` and rethrown. */
  async step<T>(restoreId: number, step: string, work: () => Promise<T>, detail?: (result: T) => Record<string, unknown>): Promise<T> {
    await this.note(restoreId, step, "started");
    let result: T;
    try {
      result = await work();
    } catch (err) {
      await this.note(restoreId, step, "failed", { error: (err as Error).message }).catch(() => undefined);
      throw err;
    }
    await this.note(restoreId, step, "done", detail?.(result) ?? {});
    return result;
  }

  /** The restores whose names include a database or a folder (a kept copy left behind, say). */
  async naming(key: keyof RestoreNames, value: string): Promise<RestoreRow[]> {
    const rows = await this.sequelize.query<Record<string, unknown>>("select * from restores where names ->> :key = :value order by id", {
      replacements: { key, value },
      type: QueryTypes.SELECT,
    });
    return rows.map(fromRow);
  }

  async entries(restoreId: number): Promise<JournalEntry[]> {
    const rows = await this.log.list(["restore_id = :restoreId"], { restoreId }, 10_000);
    return rows.reverse().map((r) => ({ id: r.id, at: r.at, step: r.step, phase: r.phase as JournalPhase, detail: r.detail }));
  }

  verify(): Promise<ChainVerdict> {
    return this.log.verify();
  }
}
