import { hostname } from "node:os";
import type { ChainAnchor } from "../../lib/chain-anchors.ts";
import { APP_VERSION } from "../../lib/version.ts";
import type { BackupSet } from "../backup-catalogue.ts";
import { controlJudgement, factOf, policyOf, type EvidenceSource } from "./control-judgement.ts";
import { controlLookbackHours, type BackupPolicy, type ControlResult, type RepositoryEncryption } from "./controls.ts";
import type { EvidenceRow } from "./evidence-log.ts";
import { publicKeyFingerprint, type EmbeddedSignature } from "./evidence-signature.ts";

/** What an export reads: the policy, the repositories, the catalogue and the evidence log. */
export type { EvidenceSource };

export interface ExportedRecord {
  id: number;
  at: string;
  kind: EvidenceRow["kind"];
  outcome: EvidenceRow["outcome"];
  setId: string | null;
  repository: string | null;
  detail: Record<string, unknown>;
  prevHash: string;
  hash: string;
  /** Exactly what `hash` covers: hash = sha256(prevHash + "\n" + canonicalJson(hashedRecord)). */
  hashedRecord: Record<string, unknown>;
}

export interface RunView {
  setId: string;
  kind: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  bytesAdded: number | null;
  bytesProcessed: number | null;
  primarySnapshots: Record<string, string>;
  secondarySnapshots: Record<string, string> | null;
  copiedAt: string | null;
  error: string | null;
  recordIds: number[];
}

/** One row per record of a kind, with the detail keys that kind carries lifted out. */
export interface EventView {
  recordId: number;
  at: string;
  outcome: string;
  setId: string | null;
  repository: string | null;
  [key: string]: unknown;
}

export interface EvidenceReport {
  format: "plum-backup-evidence";
  formatVersion: 1;
  generatedAt: string;
  appliance: { hostname: string; appVersion: string; publicUrl: string | null; publicKeyFingerprint: string };
  period: { from: string; to: string; controlsAsOf: string };
  policy: BackupPolicy;
  repositories: RepositoryEncryption[];
  encryption: { status: "on" | "unconfirmed"; scheme: string };
  controls: ControlResult[];
  runs: RunView[];
  copies: EventView[];
  checks: EventView[];
  forgets: EventView[];
  restores: EventView[];
  drills: EventView[];
  chain: {
    name: "backup_evidence";
    hash: string;
    recordsFrom: string;
    anchor: string | null;
    firstId: number | null;
    lastId: number | null;
    lastHash: string | null;
    count: number;
    /**
     * The signed checkpoint of the evidence chain taken for this export (its line in the appliance's anchor
     * file): `lastHash` is the chain's head when exported, signed by the appliance key over
     * "plum-chain-anchor/1\n" + canonicalJson of its other fields. Absent on the console's page view.
     */
    checkpoint?: ChainAnchor | null;
  };
  records: ExportedRecord[];
  signature?: EmbeddedSignature;
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
const num = (v: string | number | null | undefined) => (v === null || v === undefined ? null : Number(v));

function runOf(set: BackupSet, records: ExportedRecord[]): RunView {
  return {
    setId: set.id,
    kind: set.kind,
    status: set.status,
    startedAt: set.startedAt.toISOString(),
    finishedAt: iso(set.finishedAt),
    bytesAdded: num(set.bytesAdded),
    bytesProcessed: num(set.bytesProcessed),
    primarySnapshots: set.primarySnapshots as Record<string, string>,
    secondarySnapshots: set.secondarySnapshots as Record<string, string> | null,
    copiedAt: iso(set.copiedAt),
    error: set.error,
    recordIds: records.filter((r) => r.setId === set.id).map((r) => r.id),
  };
}

const EVENT_KEYS: Record<"copy" | "check" | "forget" | "restore" | "drill", string[]> = {
  copy: ["snapshots", "original"],
  check: ["subset"],
  forget: ["kept", "forgotten"],
  restore: ["from", "parts", "rtoSeconds"],
  drill: ["startedAt", "finishedAt", "rtoSeconds", "verified", "error"],
};

function eventsOf(kind: keyof typeof EVENT_KEYS, records: ExportedRecord[]): EventView[] {
  return records
    .filter((r) => r.kind === kind)
    .map((r) => ({
      recordId: r.id,
      at: r.at,
      outcome: r.outcome,
      setId: r.setId ?? (typeof r.detail.setId === "string" ? r.detail.setId : null),
      repository: r.repository,
      ...Object.fromEntries(EVENT_KEYS[kind].map((k) => [k, r.detail[k] ?? null])),
    }));
}

/**
 * Everything an export holds, unsigned. Controls are judged at the end of the period (or now, if that is
 * earlier); the records start early enough to hold whatever the controls cite, so the chain segment in the
 * file backs every judgement.
 */
export async function evidenceReportBuilder(props: {
  source: EvidenceSource;
  from: Date;
  to: Date;
  publicKeyPem: string;
  now?: Date;
  checkpoint?: ChainAnchor | null;
}): Promise<EvidenceReport> {
  const { source, from, to } = props;
  const now = props.now ?? new Date();
  const policy = policyOf(source.config);
  const asOf = new Date(Math.min(to.getTime(), now.getTime()));
  const recordsFrom = new Date(Math.min(from.getTime(), asOf.getTime() - controlLookbackHours(policy, asOf) * 3600_000));

  const rows = await source.evidence.between(recordsFrom, to);
  const records: ExportedRecord[] = rows.map((row) => ({
    ...factOf(row),
    at: row.at.toISOString(),
    prevHash: row.prevHash,
    hash: row.hash,
    hashedRecord: source.evidence.chain.hashedRecord(row),
  }));
  const allSets = await source.sets.findAll({ order: [["startedAt", "ASC"]] });
  const { repositories, controls } = await controlJudgement({ source, asOf, rows, sets: allSets, setsBefore: to });
  const inPeriod = records.filter((r) => r.at >= from.toISOString());

  return {
    format: "plum-backup-evidence",
    formatVersion: 1,
    generatedAt: now.toISOString(),
    appliance: {
      hostname: hostname(),
      appVersion: APP_VERSION,
      publicUrl: source.config.http.publicUrl ?? null,
      publicKeyFingerprint: publicKeyFingerprint(props.publicKeyPem),
    },
    period: { from: from.toISOString(), to: to.toISOString(), controlsAsOf: asOf.toISOString() },
    policy,
    repositories,
    encryption: {
      status: controls.find((c) => c.id === "encryption")!.result === "pass" ? "on" : "unconfirmed",
      scheme: "restic repository format: AES-256-CTR with Poly1305-AES, master key sealed by scrypt from the repository password",
    },
    controls,
    runs: allSets.filter((s) => s.startedAt >= from && s.startedAt < to).map((s) => runOf(s, records)),
    copies: eventsOf("copy", inPeriod),
    checks: eventsOf("check", inPeriod),
    forgets: eventsOf("forget", inPeriod),
    restores: eventsOf("restore", inPeriod),
    drills: eventsOf("drill", inPeriod).map((d) => ({ ...d, rtoTargetSeconds: policy.rtoMinutes * 60 })),
    chain: {
      name: "backup_evidence",
      hash: 'sha256(prevHash + "\\n" + canonicalJson(hashedRecord)), canonicalJson: JSON with keys sorted at every depth',
      recordsFrom: recordsFrom.toISOString(),
      anchor: records[0]?.prevHash ?? null,
      firstId: records[0]?.id ?? null,
      lastId: records.at(-1)?.id ?? null,
      lastHash: records.at(-1)?.hash ?? null,
      count: records.length,
      ...(props.checkpoint !== undefined ? { checkpoint: props.checkpoint } : {}),
    },
    records,
  };
}
