/** The formats an evidence export is written in; apart from the exporter, so `evidence verify` loads none of it. */
export const EVIDENCE_FORMATS = ["json", "csv", "pdf"] as const;
export type EvidenceFormat = (typeof EVIDENCE_FORMATS)[number];
