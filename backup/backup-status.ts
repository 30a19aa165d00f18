import type { SetKind } from "./backup-types.ts";
import { controlsNow, type EvidenceSource } from "./evidence/control-judgement.ts";
import type { ControlId, ControlResult } from "./evidence/controls.ts";

/**
 * The backup side of `plumctl status`, as of one moment. Ages are whole seconds at `asOf`. Whether each
 * fact is within its limit is the evidence control's own verdict (controls.ts), so status and an export agree.
 */
export interface BackupStatus {
  asOf: string;
  /** backup.rpoHours. */
  rpoHours: number;
  /** The newest set that succeeded (by its finish), or null before the first. */
  lastSet: { id: string; kind: SetKind; finishedAt: string; ageSeconds: number } | null;
  /** The backup-rpo control passes: the newest good backup is younger than the RPO. */
  withinRpo: boolean;
  /** The off-site copy: the newest data copied to the secondary (its set's finish) and the offsite-copy control. */
  offsite: { configured: boolean; maxAgeHours: number; copiedAt: string | null; dataAgeSeconds: number | null; ok: boolean };
  /** The newest restore drill, its measured RTO, and the restore-drill control (passed, young enough, RTO within target). */
  drill: { maxAgeDays: number; rtoTargetSeconds: number; at: string | null; rtoSeconds: number | null; ok: boolean };
  /** Every evidence control, in the auditor's order, as judged at asOf. */
  controls: Array<{ id: ControlId; name: string; result: "pass" | "fail"; finding: string }>;
}

const ageSeconds = (asOf: Date, at: Date) => Math.max(0, Math.round((asOf.getTime() - at.getTime()) / 1000));

function value(control: ControlResult, key: string): string | undefined {
  const v = control.evidence.values[key];
  return typeof v === "string" ? v : undefined;
}

/** The backup facts of an appliance at `asOf`: from the catalogue, and the controls as the evidence export judges them. */
export async function backupStatus(source: EvidenceSource, asOf = new Date()): Promise<BackupStatus> {
  const [last, { policy, controls }] = await Promise.all([
    source.sets.findOne({ where: { status: "succeeded" }, order: [["finishedAt", "DESC"]] }),
    controlsNow(source, asOf),
  ]);
  const control = (id: ControlId) => controls.find((c) => c.id === id)!;
  const offsite = control("offsite-copy");
  const drill = control("restore-drill");
  const dataTime = value(offsite, "dataTime");
  const drillAt = value(drill, "at");
  const rto = drill.evidence.values.rtoSeconds;
  return {
    asOf: asOf.toISOString(),
    rpoHours: policy.rpoHours,
    lastSet:
      last && last.finishedAt
        ? { id: last.id, kind: last.kind, finishedAt: last.finishedAt.toISOString(), ageSeconds: ageSeconds(asOf, last.finishedAt) }
        : null,
    withinRpo: control("backup-rpo").result === "pass",
    offsite: {
      configured: !!source.repos.secondary,
      maxAgeHours: policy.offsiteMaxAgeHours,
      copiedAt: value(offsite, "copiedAt") ?? null,
      dataAgeSeconds: dataTime ? ageSeconds(asOf, new Date(dataTime)) : null,
      ok: offsite.result === "pass",
    },
    drill: {
      maxAgeDays: policy.drillMaxAgeDays,
      rtoTargetSeconds: policy.rtoMinutes * 60,
      at: drillAt ?? null,
      rtoSeconds: typeof rto === "number" ? rto : null,
      ok: drill.result === "pass",
    },
    controls: controls.map((c) => ({ id: c.id, name: c.name, result: c.result, finding: c.finding })),
  };
}
