import { chmodSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { homeLayout, resolveHome } from "../lib/paths.ts";
import { ensureSecrets } from "../lib/secrets.ts";
import { EVIDENCE_FORMATS, type EvidenceFormat } from "../backup/evidence/evidence-formats.ts";
import { appliancePin, fingerprintAdvice, parseFingerprint, pinFromKeyFile, type EvidencePin } from "../backup/evidence/evidence-pin.ts";
import { verifyEvidenceFile, type EvidenceVerdict } from "../backup/evidence/evidence-verifier.ts";

/** What a failed verdict amounts to, first: whether the signature holds, then whether its signer is the pinned key. */
function headline(verdict: EvidenceVerdict): string {
  if (verdict.signature === "invalid") return "signature invalid";
  if (verdict.signer === "unpinned") return "signature valid, signer NOT verified";
  if (verdict.signer === "mismatch") return "signature valid, but by another key than the pinned one";
  return "signed by the pinned key, but its content does not hold together";
}

/** One file's verdict: a line on stdout when it verifies, else on stderr with each problem and, unpinned, how to pin. */
function printVerdict(verdict: EvidenceVerdict, unreadable: string | undefined): void {
  const { file } = verdict;
  if (verdict.ok) {
    const records = verdict.records !== undefined ? `; ${verdict.records} record${verdict.records === 1 ? "" : "s"}, hash chain intact` : "";
    process.stdout.write(`${file}: verified, signed by the pinned ed25519 key ${verdict.signedBy} (${verdict.pin!.source})${records}\n`);
    return;
  }
  const hint =
    verdict.signer !== "unpinned"
      ? ""
      : `  ${unreadable ? `(${unreadable}) ` : ""}Pin the signer: --fingerprint SHA256:… as the recovery kit or the console's Evidence page printed it, or --key with the appliance's public key.\n`;
  process.stderr.write(`${file}: NOT verified: ${headline(verdict)}\n${verdict.problems.map((p) => `  - ${p}\n`).join("")}${hint}`);
}

/** The key to check against: --key and/or --fingerprint (which must then agree), else the appliance's own when it is here. */
function verifyPin(opts: { fingerprint?: string; key?: string }): { pin?: EvidencePin; unreadable?: string } {
  const fromKey = opts.key ? pinFromKeyFile(opts.key) : undefined;
  const fingerprint = opts.fingerprint !== undefined ? parseFingerprint(opts.fingerprint) : undefined;
  if (fromKey && fingerprint && fromKey.fingerprint !== fingerprint)
    throw new PlumError(`--key ${opts.key} is key ${fromKey.fingerprint} but --fingerprint names ${fingerprint}: they are not the same key`, {
      hint: "pass one of them, or the key and the fingerprint of the same appliance",
    });
  if (fromKey) return { pin: fromKey };
  if (fingerprint) return { pin: { fingerprint, source: "--fingerprint" } };
  return appliancePin(homeLayout(resolveHome()).secretsDir);
}

function appliancePinOrFail(): EvidencePin {
  const secretsDir = homeLayout(resolveHome()).secretsDir;
  const { pin, unreadable } = appliancePin(secretsDir);
  if (pin) return pin;
  throw new PlumError(unreadable ?? `there is no appliance signing key in ${secretsDir}`, {
    hint: unreadable ? "run plumctl as the agent's user (root)" : "run this on the appliance with its PLUM_HOME, or give --key FILE",
  });
}

/** Exports hold no secret: readable by anyone who may read the folder, like any report. */
function writePublic(file: string, bytes: Buffer): void {
  writeFileSync(file, bytes, { mode: 0o644 });
  chmodSync(file, 0o644);
}

export function register(program: Command): void {
  const evidence = program
    .command("evidence")
    .description("signed backup evidence for auditors: export a period, verify an export offline against the appliance key's fingerprint");
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
      // Loaded here: `evidence verify`, run by auditors many times over, needs neither the database nor the exporter.
      const [{ withBackupContext }, { evidenceExporter, evidencePeriod }] = await Promise.all([
        import("./with-backup-context.ts"),
        import("../backup/evidence/evidence-exporter.ts"),
      ]);
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
    .argument("<files...>", "a .json export, a .csv or .pdf export with FILE.sig beside it, or a console .zip; several are checked in turn")
    .description(
      "check evidence exports offline against the appliance's key (never the key inside a file): each signature and, for JSON, its records' hash chain; exits 1 naming what is wrong when any file does not verify",
    )
    .option(
      "--fingerprint <SHA256:…>",
      "the appliance key's fingerprint, as the recovery kit, the console's Evidence page and `plumctl evidence fingerprint` print it",
    )
    .option("--key <file>", "the appliance's public key (appliance-signing-key.pub.pem, or the raw key)")
    .option("--json", "print the verdict as JSON (an array of verdicts when several files are given)")
    .addHelpText(
      "after",
      "\nWithout --fingerprint or --key, the appliance's own key is used when this runs on the appliance (PLUM_HOME holds it);\nelsewhere the signer cannot be verified and the command exits 1.",
    )
    .action((files: string[], opts: { fingerprint?: string; key?: string; json?: boolean }) => {
      const { pin, unreadable } = verifyPin(opts);
      const verdicts = files.map((file) => verifyEvidenceFile(file, { pin }));
      if (opts.json) process.stdout.write(JSON.stringify(verdicts.length === 1 ? verdicts[0] : verdicts, null, 2) + "\n");
      else for (const verdict of verdicts) printVerdict(verdict, unreadable);
      if (verdicts.some((v) => !v.ok)) process.exitCode = 1;
    });
  evidence
    .command("fingerprint")
    .description("print the fingerprint of the key that signs evidence, for auditors to keep and pass to `evidence verify --fingerprint`")
    .option("--key <file>", "of this public key file instead of the appliance's own")
    .action((opts: { key?: string }) => {
      const pin = opts.key ? pinFromKeyFile(opts.key) : appliancePinOrFail();
      process.stdout.write(`${pin.fingerprint}\n${fingerprintAdvice(pin.fingerprint)}\n`);
    });
}
