import type { EvidenceReport } from "./evidence-report.ts";

function cell(v: unknown): string {
  const s = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  const guarded = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s; // no formulas when opened in a spreadsheet
  return /[",\n\r]/.test(guarded) ? `"${guarded.replace(/"/g, '""')}"` : guarded;
}

const line = (cells: unknown[]) => cells.map(cell).join(",");

/**
 * The export as one CSV in three blocks, each with its own header and a `section` first column to filter on:
 * the export's identity, the controls, and every record with its chain hashes.
 */
export function evidenceCsv(report: EvidenceReport): Buffer {
  const out: string[] = [line(["section", "key", "value"])];
  const about: Array<[string, unknown]> = [
    ["format", `${report.format} ${report.formatVersion}`],
    ["hostname", report.appliance.hostname],
    ["app_version", report.appliance.appVersion],
    ["public_key_fingerprint", report.appliance.publicKeyFingerprint],
    ["period_from", report.period.from],
    ["period_to", report.period.to],
    ["controls_as_of", report.period.controlsAsOf],
    ["generated_at", report.generatedAt],
    ["policy", report.policy],
    ["encryption", report.encryption.status],
    ["chain_anchor", report.chain.anchor],
    ["chain_last_hash", report.chain.lastHash],
  ];
  for (const [key, value] of about) out.push(line(["export", key, value]));

  out.push("", line(["section", "control", "name", "result", "iso27001", "soc2", "requirement", "finding", "record_ids", "set_ids", "values"]));
  for (const c of report.controls) {
    out.push(
      line([
        "control",
        c.id,
        c.name,
        c.result.toUpperCase(),
        c.frameworks.iso27001.join(" "),
        c.frameworks.soc2.join(" "),
        c.requirement,
        c.finding,
        c.evidence.recordIds.join(" "),
        c.evidence.setIds.join(" "),
        c.evidence.values,
      ]),
    );
  }

  out.push("", line(["section", "id", "at", "kind", "outcome", "set_id", "repository", "detail", "prev_hash", "hash"]));
  for (const r of report.records) out.push(line(["record", r.id, r.at, r.kind, r.outcome, r.setId, r.repository, r.detail, r.prevHash, r.hash]));
  return Buffer.from(out.join("\n") + "\n");
}
