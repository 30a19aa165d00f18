import type { BackupSet } from "../../../backup/backup-catalogue.ts";
import type { Repository } from "../../../backup/backup-types.ts";
import type { EvidenceRow } from "../../../backup/evidence/evidence-log.ts";
import { displayLocation } from "../../../backup/restic/restic-errors.ts";

/** A repository as the Backups page shows it: credentials in its URL masked, and whether it is written append-only. */
export function presentRepository(repo: Repository): { location: string; appendOnly: boolean } {
  return { location: displayLocation(repo.location), appendOnly: !!repo.appendOnly };
}

function bytes(n: string | number | null | undefined): string {
  const v = Number(n ?? 0);
  if (!v) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log(v) / Math.log(1024)));
  return `${(v / 1024 ** i).toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function presentSet(set: BackupSet) {
  const seconds = set.finishedAt ? (set.finishedAt.getTime() - set.startedAt.getTime()) / 1000 : undefined;
  const manifest = set.manifest;
  return {
    id: set.id,
    kind: set.kind,
    status: set.status,
    good: set.status === "succeeded",
    startedAt: set.startedAt,
    finishedAt: set.finishedAt,
    duration: seconds === undefined ? "—" : `${seconds.toFixed(1)} s`,
    added: bytes(set.bytesAdded),
    processed: bytes(set.bytesProcessed),
    copied: !!set.copiedAt,
    copiedAt: set.copiedAt,
    primarySnapshots: Object.entries(set.primarySnapshots ?? {}).map(([part, id]) => ({ part, id })),
    secondarySnapshots: Object.entries(set.secondarySnapshots ?? {}).map(([part, id]) => ({ part, id })),
    appVersion: set.appVersion,
    schemaVersion: set.schemaVersion,
    error: set.error,
    tables: manifest ? Object.values(manifest.databases).reduce((n, d) => n + Object.keys(d.tables).length, 0) : 0,
    rows: manifest ? Object.values(manifest.databases).reduce((n, d) => n + Object.values(d.tables).reduce((a, b) => a + b, 0), 0) : 0,
    files: manifest?.files.length ?? 0,
  };
}

export function presentDrill(row: EvidenceRow) {
  const d = row.detail as { setId?: string; rtoSeconds?: number; error?: string; startedAt?: string; finishedAt?: string };
  return {
    id: row.id,
    at: row.at,
    passed: row.outcome === "success",
    setId: d.setId ?? row.set_id,
    rto: d.rtoSeconds === undefined ? "—" : `${Number(d.rtoSeconds).toFixed(1)} s`,
    error: d.error,
  };
}
