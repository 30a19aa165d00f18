import { QueryTypes, UniqueConstraintError, type Sequelize, type Transaction } from "sequelize";
import { verifyAnchoredChain, type AnchoredVerdict, type AnchorSettings } from "../../lib/chain-anchors.ts";
import { PlumError } from "../../lib/errors.ts";
import type { ChainVerdict } from "../../lib/hash-chain.ts";
import { HashChainedLog } from "../../lib/hash-chained-log.ts";
import type { DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";
import type { DeclaredOutcome, Undeclared } from "./data-gate.ts";

export const STEPS = ["verify", "snapshot", "stage", "validate", "promote", "soak", "rollback", "complete"] as const;
export type Step = (typeof STEPS)[number];
export type UpgradeStatus = "running" | "waiting" | "soaking" | "rolling-back" | "restore-pending" | "completed" | "aborted" | "rolled-back" | "failed";
export type Promotion = "now" | "window" | "approval";
export type RollbackMode = "traffic-only" | "down-migrations" | "restore-required";
export const FINISHED: UpgradeStatus[] = ["completed", "aborted", "rolled-back", "failed"];

/** What an upgrade keeps for the admin and the auditor: timings of each step, suite results, decisions. */
export interface UpgradeReport {
  steps: Record<string, { startedAt: string; finishedAt?: string; seconds?: number; outcome?: "done" | "failed" | "undone"; detail?: unknown }>;
  migrations?: { staging?: { ran: string[]; seconds: number }; production?: { ran: string[]; seconds: number }; undone?: { ran: string[]; seconds: number } };
  suites?: { release?: unknown; currentSmoke?: unknown };
  rollbackMode?: { mode: RollbackMode; why: string };
  /** The data-diff gate: staging fingerprinted by stage (before and after the migrations), judged by validate. */
  dataGate?: DataGateReport;
  promotion?: { waitedFor: Promotion; approvedBy?: string; windowOpenedAt?: string };
  soak?: { seconds: number; requests: number; errors5xx: number; p99Ms: number | null; healthFailures: number; breach?: string };
  rollback?: {
    reason: string;
    by: string;
    breachAt?: string;
    trafficBackAt?: string;
    secondsToOldVersion?: number;
    writeWindow?: { from: string; to: string };
    restoreConfirmedBy?: string;
    restoredAt?: string;
  };
  /** The support bundle written when the upgrade failed, aborted or rolled back (or why none could be). */
  supportBundle?: { file: string; writtenAt: string } | { error: string; writtenAt: string };
}

export interface DataGateReport {
  /** Kept from stage to validate only (the judgement below replaces them). */
  fingerprints?: { before: DatabaseFingerprint; after: DatabaseFingerprint };
  /** "restore": the before-fingerprint is the one the snapshot's restore verified against its manifest. */
  before?: { from: "restore" | "staging"; tables: number; rows: number; seconds: number };
  after?: { tables: number; rows: number; seconds: number };
  /** The row-by-row comparison that counts and names undeclared differences (failure path only). */
  rowsSeconds?: number;
  /** "none": a bundle built before declarations. */
  declaredBy?: "manifest" | "none";
  migrations?: string[];
  declared?: DeclaredOutcome[];
  undeclared?: Undeclared[];
  /** Statements of the migrations the bundle builder could not read (only the measurement covers them). */
  unread?: string[];
  verdict?: "passed" | "refused" | "held-for-approval";
  /** Why the promotion waits for an admin (held-for-approval). */
  hold?: string;
}

export interface Upgrade {
  id: number;
  kind: "upgrade" | "rollback" | "agent";
  fromVersion: string;
  toVersion: string;
  status: UpgradeStatus;
  step: Step;
  promotion: Promotion;
  rollbackMode: RollbackMode | null;
  snapshotSetId: string | null;
  snapshotAt: Date | null;
  requestedBy: string;
  approvedBy: string | null;
  approvedAt: Date | null;
  report: UpgradeReport;
  error: string | null;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

const COLUMNS: Record<keyof Upgrade, string> = {
  id: "id",
  kind: "kind",
  fromVersion: "from_version",
  toVersion: "to_version",
  status: "status",
  step: "step",
  promotion: "promotion",
  rollbackMode: "rollback_mode",
  snapshotSetId: "snapshot_set_id",
  snapshotAt: "snapshot_at",
  requestedBy: "requested_by",
  approvedBy: "approved_by",
  approvedAt: "approved_at",
  report: "report",
  error: "error",
  createdAt: "created_at",
  updatedAt: "updated_at",
  finishedAt: "finished_at",
};

function fromRow(r: Record<string, unknown>): Upgrade {
  const out: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(COLUMNS)) out[key] = r[column];
  return out as unknown as Upgrade;
}

type JournalColumns = { upgrade_id: number; step: string; phase: string; detail: Record<string, unknown> };

/**
 * The upgrades table and the hash-chained upgrade journal in plum_ops, and the production release pointer.
 * The database is the lock: a partial unique index allows one unfinished upgrade.
 */
export class UpgradeJournal {
  private readonly log: HashChainedLog<JournalColumns>;
  constructor(private readonly sequelize: Sequelize) {
    this.log = new HashChainedLog<JournalColumns>(sequelize, {
      table: "upgrade_journal",
      chain: "upgrade_journal",
      columns: ["upgrade_id", "step", "phase", "detail"],
      jsonColumns: ["detail"],
    });
  }

  async create(input: {
    kind: Upgrade["kind"];
    fromVersion: string;
    toVersion: string;
    promotion: Promotion;
    requestedBy: string;
    step?: Step;
  }): Promise<Upgrade> {
    try {
      const [row] = await this.sequelize.query<Record<string, unknown>>(
        `insert into upgrades (kind, from_version, to_version, status, step, promotion, requested_by, report) values (:kind, :fromVersion, :toVersion, 'running', :step, :promotion, :requestedBy, '{"steps":{}}') returning *`,
        { replacements: { ...input, step: input.step ?? "verify" }, type: QueryTypes.SELECT },
      );
      return fromRow(row);
    } catch (err) {
      if (err instanceof UniqueConstraintError) {
        const active = await this.active();
        throw new PlumError(`upgrade ${active?.id ?? "?"} (${active?.fromVersion} → ${active?.toVersion}) is not finished yet: one upgrade at a time`, {
          hint: "follow it with `plumctl upgrade status`; abort it with `plumctl upgrade abort` if it waits for promotion",
        });
      }
      throw err;
    }
  }

  /** Several changes that must land together (the production pointer with the step that switched it). */
  transaction<T>(work: (t: Transaction) => Promise<T>): Promise<T> {
    return this.sequelize.transaction(work);
  }

  async get(id: number): Promise<Upgrade | undefined> {
    const [row] = await this.sequelize.query<Record<string, unknown>>("select * from upgrades where id = :id", {
      replacements: { id },
      type: QueryTypes.SELECT,
    });
    return row && fromRow(row);
  }

  async active(): Promise<Upgrade | undefined> {
    const [row] = await this.sequelize.query<Record<string, unknown>>("select * from upgrades where finished_at is null order by id desc limit 1", {
      type: QueryTypes.SELECT,
    });
    return row && fromRow(row);
  }

  async latest(): Promise<Upgrade | undefined> {
    const [row] = await this.sequelize.query<Record<string, unknown>>("select * from upgrades order by id desc limit 1", { type: QueryTypes.SELECT });
    return row && fromRow(row);
  }

  async history(limit = 50): Promise<Upgrade[]> {
    const rows = await this.sequelize.query<Record<string, unknown>>("select * from upgrades order by id desc limit :limit", {
      replacements: { limit },
      type: QueryTypes.SELECT,
    });
    return rows.map(fromRow);
  }

  /** Change some columns of an upgrade; `finished` statuses also set finished_at (which releases the lock). */
  async update(id: number, changes: Partial<Omit<Upgrade, "id" | "createdAt">>, transaction?: Transaction): Promise<Upgrade> {
    const sets: string[] = ["updated_at = now()"];
    const replacements: Record<string, unknown> = { id };
    for (const [key, value] of Object.entries(changes)) {
      const column = COLUMNS[key as keyof Upgrade];
      // A rollback's reason, once written (console, CLI, a breach), survives a report written from an older
      // copy by a step finishing meanwhile: merged in the same statement, so no write can lose it.
      if (key === "report")
        sets.push(`${column} = case when (:report)::jsonb ? 'rollback' or not (${column} ? 'rollback') then (:report)::jsonb
          else (:report)::jsonb || jsonb_build_object('rollback', ${column} -> 'rollback') end`);
      else sets.push(`${column} = :${key}`);
      replacements[key] = key === "report" ? JSON.stringify(value) : value;
    }
    if (changes.status && FINISHED.includes(changes.status)) sets.push("finished_at = now()");
    const [row] = await this.sequelize.query<Record<string, unknown>>(`update upgrades set ${sets.join(", ")} where id = :id returning *`, {
      replacements,
      type: QueryTypes.SELECT,
      transaction,
    });
    return fromRow(row);
  }

  /** Change an upgrade only while its status is one of `expected` (a rollback asked for meanwhile wins); undefined when not. */
  async updateIf(
    id: number,
    expected: UpgradeStatus[],
    changes: Partial<Omit<Upgrade, "id" | "createdAt">>,
    transaction?: Transaction,
  ): Promise<Upgrade | undefined> {
    const [row] = await this.sequelize.query<Record<string, unknown>>("select status from upgrades where id = :id for update", {
      replacements: { id },
      type: QueryTypes.SELECT,
      transaction,
    });
    if (!row || !expected.includes(row.status as UpgradeStatus)) return undefined;
    return this.update(id, changes, transaction);
  }

  note(
    upgradeId: number,
    step: Step,
    phase: "started" | "done" | "failed" | "undone" | "note",
    detail: Record<string, unknown> = {},
    transaction?: Transaction,
  ): Promise<unknown> {
    return this.log.append({ upgrade_id: upgradeId, step, phase, detail }, transaction);
  }

  async entries(upgradeId: number): Promise<Array<{ id: number; at: Date; step: string; phase: string; detail: Record<string, unknown> }>> {
    const rows = await this.log.list(["upgrade_id = :upgradeId"], { upgradeId }, 1000);
    return rows.reverse().map((r) => ({ id: r.id, at: r.at, step: r.step, phase: r.phase, detail: r.detail }));
  }

  verify(): Promise<ChainVerdict> {
    return this.log.verify();
  }

  /** The journal's chain checked against its newest signed checkpoint, and the anchor file. */
  verifyAnchored(anchors: AnchorSettings): Promise<AnchoredVerdict> {
    return verifyAnchoredChain(this.log, anchors);
  }

  /** The release serving production; undefined on an appliance that has never upgraded (its installed release). */
  async productionVersion(): Promise<string | undefined> {
    const [row] = await this.sequelize.query<{ version: string }>("select version from production_release where id = 1", { type: QueryTypes.SELECT });
    return row?.version;
  }

  async setProductionVersion(version: string, upgradeId: number | null, transaction?: Transaction): Promise<void> {
    await this.sequelize.query(
      "insert into production_release (id, version, upgrade_id, changed_at) values (1, :version, :upgradeId, now()) on conflict (id) do update set version = excluded.version, upgrade_id = excluded.upgrade_id, changed_at = now()",
      { replacements: { version, upgradeId }, transaction },
    );
  }
}
