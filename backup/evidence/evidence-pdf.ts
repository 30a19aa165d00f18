import PDFDocument from "pdfkit";
import type { EvidenceReport, EventView } from "./evidence-report.ts";

type Doc = InstanceType<typeof PDFDocument>;

const when = (iso: unknown) => (typeof iso === "string" && iso ? iso.replace("T", " ").slice(0, 19) + " UTC" : "");
const text = (v: unknown) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
const snapshots = (s: Record<string, string> | null) =>
  s
    ? Object.entries(s)
        .map(([part, id]) => `${part}: ${id.slice(0, 8)}`)
        .join("\n")
    : "";

function mib(bytes: number | null): string {
  return bytes === null ? "" : `${(bytes / 1048576).toFixed(1)} MiB`;
}

function heading(doc: Doc, title: string): void {
  if (doc.y > doc.page.height - 160) doc.addPage();
  doc.moveDown(1).font("Helvetica-Bold").fontSize(14).text(title, doc.page.margins.left).moveDown(0.4).font("Helvetica").fontSize(8);
}

/** A table with a bold header row; an empty one says so in a line instead. */
function table(doc: Doc, header: string[], rows: string[][], widths: Array<number | string>, empty: string): void {
  if (rows.length === 0) {
    doc.fontSize(9).text(empty);
    return;
  }
  doc.fontSize(8).table({
    columnStyles: widths,
    rowStyles: (i) => (i === 0 ? { backgroundColor: "#e8e4f0" } : undefined),
    data: [header.map((h) => ({ text: h, font: { src: "Helvetica-Bold" }, type: "TH" as const })), ...rows],
  });
  doc.x = doc.page.margins.left;
}

function eventRows(events: EventView[], columns: Array<(e: EventView) => unknown>): string[][] {
  return events.map((e) => columns.map((c) => text(c(e))));
}

function titlePage(doc: Doc, r: EvidenceReport): void {
  const passed = r.controls.filter((c) => c.result === "pass").length;
  doc.font("Helvetica-Bold").fontSize(24).text("Backup evidence", { align: "left" }).moveDown(0.5);
  doc
    .font("Helvetica")
    .fontSize(12)
    .text(`Plum appliance ${r.appliance.hostname}${r.appliance.publicUrl ? ` (${r.appliance.publicUrl})` : ""}, version ${r.appliance.appVersion}`);
  doc.text(`Period: ${when(r.period.from)} to ${when(r.period.to)}`);
  doc.text(`Controls judged as of ${when(r.period.controlsAsOf)}; generated ${when(r.generatedAt)}`).moveDown();
  doc.font("Helvetica-Bold").fontSize(16).text(`Controls: ${passed} of ${r.controls.length} pass`).moveDown();
  doc.font("Helvetica").fontSize(10);
  doc.text("Signed by the appliance key (ed25519). Public key fingerprint:");
  doc.font("Courier").text(r.appliance.publicKeyFingerprint).font("Helvetica").moveDown();
  doc.text(
    "This PDF is signed by the file beside it with the same name and .sig appended; check both offline with " +
      "`plumctl evidence verify FILE --fingerprint` with the fingerprint above as the auditor keeps it (from the " +
      "recovery kit or the console's Evidence page), never only the one printed here. The JSON export of the same period carries every evidence record with its " +
      "hash-chain links, for verification record by record.",
  );
  doc
    .moveDown()
    .text(`Records in the chain segment: ${r.chain.count} (ids ${r.chain.firstId ?? "-"} to ${r.chain.lastId ?? "-"}), from ${when(r.chain.recordsFrom)}.`);
}

function summary(doc: Doc, r: EvidenceReport): void {
  heading(doc, "Summary");
  const count = (xs: Array<{ outcome?: unknown; status?: unknown }>, ok: string) =>
    `${xs.length} (${xs.filter((x) => (x.outcome ?? x.status) === ok).length} succeeded)`;
  const p = r.policy;
  const rows = [
    ["Backup sets started", count(r.runs, "succeeded")],
    ["Copies to the secondary repository", count(r.copies, "success")],
    ["Integrity checks", count(r.checks, "success")],
    ["Retention runs", count(r.forgets, "success")],
    ["Restores", count(r.restores, "success")],
    ["Restore drills", count(r.drills, "success")],
    ["Encryption", `${r.encryption.status}: ${r.encryption.scheme}`],
    ["Backup schedule (UTC cron)", `${p.schedule}; checks ${p.checkSchedule}; drills ${p.drillSchedule}`],
    [
      "Retention",
      `keep hourly ${p.retention.keepHourly}, daily ${p.retention.keepDaily}, weekly ${p.retention.keepWeekly}, monthly ${p.retention.keepMonthly}`,
    ],
    ["Targets", `RPO ${p.rpoHours} h, RTO ${p.rtoMinutes} min, off-site within ${p.offsiteMaxAgeHours} h, drill within ${p.drillMaxAgeDays} days`],
    ...r.repositories.map((repo) => [`Repository (${repo.role})`, repo.location]),
  ];
  table(doc, ["Item", "Value"], rows, [150, "*"], "");
}

/** A person's reading of the export: title page, summary, controls, then one table per kind of run. */
export function evidencePdf(r: EvidenceReport): Promise<Buffer> {
  const doc = new PDFDocument({
    size: "A4",
    margin: 40,
    info: {
      Title: `Backup evidence ${r.period.from} to ${r.period.to}`,
      Author: `Plum appliance ${r.appliance.hostname}`,
      CreationDate: new Date(r.generatedAt),
    },
  });
  const chunks: Buffer[] = [];
  doc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on("end", () => resolve(Buffer.concat(chunks)));
    doc.on("error", reject);
  });

  titlePage(doc, r);
  doc.addPage();
  summary(doc, r);

  heading(doc, "Controls");
  table(
    doc,
    ["Control", "Result", "ISO 27001", "SOC 2", "Finding"],
    r.controls.map((c) => [
      c.name,
      c.result.toUpperCase(),
      c.frameworks.iso27001.join(", "),
      c.frameworks.soc2.join(", "),
      `${c.finding}\nRequired: ${c.requirement}\nRecords: ${c.evidence.recordIds.join(", ") || "none"}`,
    ]),
    [95, 40, 50, 35, "*"],
    "",
  );

  heading(doc, "Backup sets");
  table(
    doc,
    ["Set", "Kind", "Status", "Started", "Finished", "Added", "Primary snapshots", "Secondary snapshots"],
    r.runs.map((s) => [
      s.setId,
      s.kind,
      s.status,
      when(s.startedAt),
      when(s.finishedAt),
      mib(s.bytesAdded),
      snapshots(s.primarySnapshots),
      snapshots(s.secondarySnapshots),
    ]),
    ["*", 45, 45, 65, 65, 45, 75, 75],
    "No backup set was started in the period.",
  );

  heading(doc, "Copies to the secondary repository");
  table(
    doc,
    ["Record", "At", "Outcome", "Set", "Secondary snapshots"],
    eventRows(r.copies, [
      (e) => e.recordId,
      (e) => when(e.at),
      (e) => e.outcome,
      (e) => e.setId,
      (e) => snapshots(e.snapshots as Record<string, string> | null),
    ]),
    [45, 105, 50, "*", 150],
    "No copy in the period.",
  );

  heading(doc, "Integrity checks");
  table(
    doc,
    ["Record", "At", "Outcome", "Repository", "Data subset"],
    eventRows(r.checks, [(e) => e.recordId, (e) => when(e.at), (e) => e.outcome, (e) => e.repository ?? "primary", (e) => e.subset]),
    [45, 105, 50, 70, "*"],
    "No check in the period.",
  );

  heading(doc, "Restore drills");
  table(
    doc,
    ["Record", "At", "Outcome", "Set", "Measured RTO", "Target"],
    eventRows(r.drills, [
      (e) => e.recordId,
      (e) => when(e.at),
      (e) => e.outcome,
      (e) => e.setId,
      (e) => (typeof e.rtoSeconds === "number" ? `${e.rtoSeconds} s` : ""),
      (e) => `${e.rtoTargetSeconds} s`,
    ]),
    [45, 105, 50, "*", 70, 60],
    "No drill in the period.",
  );

  heading(doc, "Restores and retention runs");
  table(
    doc,
    ["Record", "At", "Kind", "Outcome", "Set", "Detail"],
    [
      ...eventRows(r.restores, [
        (e) => e.recordId,
        (e) => when(e.at),
        () => "restore",
        (e) => e.outcome,
        (e) => e.setId,
        (e) => (typeof e.rtoSeconds === "number" ? `RTO ${e.rtoSeconds} s` : ""),
      ]),
      ...eventRows(r.forgets, [
        (e) => e.recordId,
        (e) => when(e.at),
        () => "retention",
        (e) => e.outcome,
        () => "",
        (e) => `forgot ${Array.isArray(e.forgotten) ? e.forgotten.length : 0} set(s)`,
      ]),
    ],
    [45, 105, 50, 50, "*", 110],
    "No restore or retention run in the period.",
  );

  heading(doc, "Evidence chain");
  doc
    .fontSize(8)
    .text(`Anchor (the hash before the first record): ${r.chain.anchor ?? "none"}`, { width: 500 })
    .moveDown(0.3);
  table(
    doc,
    ["Id", "At", "Kind", "Outcome", "Hash"],
    r.records.map((x) => [String(x.id), when(x.at), x.kind, x.outcome, x.hash]),
    [30, 105, 40, 45, "*"],
    "No record.",
  );

  doc.end();
  return done;
}
