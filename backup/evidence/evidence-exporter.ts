import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { takeAnchor } from "../../lib/chain-anchors.ts";
import { PlumError } from "../../lib/errors.ts";
import { canonicalJson } from "../../lib/hash-chain.ts";
import { homeLayout } from "../../lib/paths.ts";
import { evidenceCsv } from "./evidence-csv.ts";
import type { EvidenceFormat } from "./evidence-formats.ts";
import { evidenceReportBuilder, type EvidenceReport, type EvidenceSource } from "./evidence-report.ts";
import { detachedSignature, signBytes, type SigningKeys } from "./evidence-signature.ts";

export { EVIDENCE_FORMATS, type EvidenceFormat } from "./evidence-formats.ts";

export interface EvidenceExport {
  fileName: string;
  body: Buffer;
  /** `fileName + ".sig"` for CSV and PDF (JSON carries its signature inside). */
  signature?: Buffer;
  report: EvidenceReport;
}

/**
 * Every secret this appliance holds, to refuse an export that would carry one: each file under
 * PLUM_HOME/secrets but the public key, and the password of an external database URL.
 */
function knownSecrets(source: EvidenceSource, keys: SigningKeys): string[] {
  const dir = homeLayout(source.config.home).secretsDir;
  const values = [keys.signingKeyPem];
  for (const f of readdirSync(dir, { withFileTypes: true }))
    if (f.isFile() && !f.name.endsWith(".pub.pem")) values.push(readFileSync(path.join(dir, f.name), "utf8"));
  const dbPassword = source.config.database.url ? decodeURIComponent(new URL(source.config.database.url).password) : "";
  // A PEM is matched by its base64 body, whatever line breaks an export might give it.
  return [...values.map((v) => v.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")), dbPassword].filter((v) => v.length >= 12);
}

function refuseSecrets(report: EvidenceReport, secrets: string[]): void {
  const text = JSON.stringify(report).replace(/\\n/g, "");
  if (secrets.some((s) => text.includes(s))) {
    const record = report.records.find((r) => secrets.some((s) => JSON.stringify(r).replace(/\\n/g, "").includes(s)));
    throw new PlumError(`the evidence export would contain a secret${record ? ` (in evidence record ${record.id})` : ""}; nothing was written`, {
      hint: "report this: evidence records must never hold passwords or keys",
    });
  }
}

/**
 * The period [from, to) of days (YYYY-MM-DD, UTC) or ISO timestamps. A day given as the end means the end of
 * that day, so 2025-01-01 to 2025-01-31 is the whole of January.
 */
export function evidencePeriod(from: string, to: string): { from: Date; to: Date } {
  const bound = (value: string, end: boolean) => {
    const day = /^\d{4}-\d{2}-\d{2}$/.test(value);
    const d = new Date(day ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(d.getTime()))
      throw new PlumError(`"${value}" is not a date`, { hint: "give a day as YYYY-MM-DD (UTC) or an ISO timestamp such as 2025-01-31T18:00:00Z" });
    return day && end ? new Date(d.getTime() + 86400_000) : d;
  };
  const period = { from: bound(from, false), to: bound(to, true) };
  if (!(period.from < period.to))
    throw new PlumError(`the period is empty: ${period.from.toISOString()} is not before ${period.to.toISOString()}`, {
      hint: "give a start earlier than the end",
    });
  return period;
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/**
 * An evidence export of [from, to): JSON signed inside (`signature` over the canonical JSON of the rest), CSV
 * and PDF with a detached signature of their bytes. Signed by the appliance key; never carries a secret.
 */
export async function evidenceExporter(props: {
  ctx: EvidenceSource;
  from: Date;
  to: Date;
  format: EvidenceFormat;
  signingKeyPem: string;
  publicKeyPem: string;
  now?: Date;
}): Promise<EvidenceExport> {
  const keys: SigningKeys = { signingKeyPem: props.signingKeyPem, publicKeyPem: props.publicKeyPem };
  // Anchored before it is read: the file carries a signed checkpoint of the chain it was cut from.
  const checkpoint = await takeAnchor({
    log: props.ctx.evidence.chain,
    settings: { file: homeLayout(props.ctx.config.home).anchorFile, keys: { signingKeyPem: keys.signingKeyPem, publicKeyPem: keys.publicKeyPem } },
    reason: "export",
  });
  const report = await evidenceReportBuilder({
    source: props.ctx,
    from: props.from,
    to: props.to,
    publicKeyPem: props.publicKeyPem,
    now: props.now,
    checkpoint: checkpoint ?? null,
  });
  refuseSecrets(report, knownSecrets(props.ctx, keys));
  const fileName = `plum-evidence-${day(props.from)}_${day(new Date(props.to.getTime() - 1))}.${props.format}`;
  if (props.format === "json") {
    const signed: EvidenceReport = { ...report, signature: signBytes(canonicalJson(report), keys) };
    return { fileName, body: Buffer.from(JSON.stringify(signed, null, 2) + "\n"), report: signed };
  }
  const body = props.format === "csv" ? evidenceCsv(report) : await (await import("./evidence-pdf.ts")).evidencePdf(report); // pdfkit loads only when a PDF is asked for
  return { fileName, body, signature: detachedSignature(fileName, body, keys), report };
}
