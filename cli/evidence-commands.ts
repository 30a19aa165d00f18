import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { homeLayout } from "../lib/paths.ts";
import { ensureSecrets } from "../lib/secrets.ts";
import { EVIDENCE_FORMATS, evidenceExporter, evidencePeriod, type EvidenceFormat } from "../backup/evidence/evidence-exporter.ts";
import { verifyEvidenceFile } from "../backup/evidence/evidence-verifier.ts";
import { withBackupContext } from "./with-backup-context.ts";

/** Exports hold no secret: readable by anyone who may read the folder, like any report. */
function writePublic(file: string, bytes: Buffer): void {
  writeFileSync(file, bytes, { mode: 0o644 });
  chmodSync(file, 0o644);
}

export function register(program: Command): void {
  const evidence = program.command("evidence").description("signed backup evidence for auditors: export a period, verify an export offline");
  evidence
    .command("export")
    .description("export the backup evidence of a period (records, runs, checks, drills, controls), signed by the appliance key")
    .requiredOption("--from <date>", "the first day (YYYY-MM-DD, UTC) or an ISO timestamp")
    .requiredOption("--to <date>", "the last day, included (YYYY-MM-DD, UTC), or an ISO timestamp (excluded)")
    .option("--format <format>", `one of ${EVIDENCE_FORMATS.join(", ")}`, "json")
    .option("--out <file>", "where to write it (default: plum-evidence-FROM_TO.FORMAT here); CSV and PDF also get FILE.sig")
    .action(async (opts: { from: string; to: string; format: string; out?: string }) => {
      if (!EVIDENCE_FORMATS.includes(opts.format as EvidenceFormat))
        throw new PlumError(`--format ${opts.format} is not supported`, { hint: `use one of ${EVIDENCE_FORMATS.join(", ")}` });
      const config = loadConfig();
      const secrets = ensureSecrets(homeLayout(config.home).secretsDir);
      await withBackupContext(config, async (ctx, db) => {
        const { from, to } = evidencePeriod(opts.from, opts.to);
        const out = await evidenceExporter({
          ctx,
          from,
          to,
          format: opts.format as EvidenceFormat,
          signingKeyPem: secrets.signingPrivateKeyPem,
          publicKeyPem: secrets.signingPublicKeyPem,
        });
        const file = opts.out ?? out.fileName;
        writePublic(file, out.body);
        if (out.signature) writePublic(`${file}.sig`, out.signature);
        await db.audit.append({
          actor: "cli",
          action: "evidence.export",
          detail: { from: from.toISOString(), to: to.toISOString(), format: opts.format, file },
        });
        const passed = out.report.controls.filter((c) => c.result === "pass").length;
        process.stdout.write(
          `wrote ${file}${out.signature ? ` and ${file}.sig` : ""}: ${out.report.records.length} records, controls ${passed} of ${out.report.controls.length} pass\n`,
        );
        for (const c of out.report.controls) process.stdout.write(`  ${c.result.toUpperCase().padEnd(4)}  ${c.name}: ${c.finding}\n`);
      });
    });
  evidence
    .command("verify")
    .argument("<file>", "a .json export, a .csv or .pdf export with FILE.sig beside it, or a console .zip")
    .description("check an evidence export offline: its signature and, for JSON, its records' hash chain; exits 1 naming what is wrong")
    .option("--key <pem>", "require this public key (the appliance's appliance-signing-key.pub.pem) to be the signer")
    .option("--json", "print the verdict as JSON")
    .action((file: string, opts: { key?: string; json?: boolean }) => {
      const verdict = verifyEvidenceFile(file, { publicKeyPem: opts.key ? readFileSync(opts.key, "utf8") : undefined });
      if (opts.json) process.stdout.write(JSON.stringify(verdict, null, 2) + "\n");
      else if (verdict.ok)
        process.stdout.write(
          `${file}: verified, signed by ed25519 key ${verdict.signedBy}${verdict.records !== undefined ? `; ${verdict.records} records, hash chain intact` : ""}\n`,
        );
      else process.stderr.write(`${file}: NOT verified\n${verdict.problems.map((p) => `  - ${p}\n`).join("")}`);
      if (!verdict.ok) process.exitCode = 1;
    });
}
