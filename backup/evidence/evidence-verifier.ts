import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { canonicalJson, chainHash } from "../../lib/hash-chain.ts";
import { unzipBundle } from "./evidence-bundle.ts";
import type { EvidenceReport, ExportedRecord } from "./evidence-report.ts";
import { publicKeyFingerprint, sha256Hex, signatureMatches, type DetachedSignature, type EmbeddedSignature } from "./evidence-signature.ts";

export interface EvidenceVerdict {
  ok: boolean;
  file: string;
  /** Why it does not verify, one sentence each; empty when it does. */
  problems: string[];
  /** The fingerprint of the key that signed it, to compare with the appliance's. */
  signedBy?: string;
  /** JSON: how many records were chain-checked. */
  records?: number;
  /** A zip bundle: the verdict of each document in it. */
  entries?: EvidenceVerdict[];
}

export interface VerifyOptions {
  /** Require this public key (PEM) to be the signer, not merely some key. */
  publicKeyPem?: string;
}

/** The readable fields of an exported record and the hashed record's name for each. */
const FIELDS: Array<[keyof ExportedRecord, string]> = [
  ["id", "id"],
  ["at", "at"],
  ["kind", "kind"],
  ["outcome", "outcome"],
  ["setId", "set_id"],
  ["repository", "repository"],
  ["detail", "detail"],
];

function signerProblems(signature: Pick<EmbeddedSignature, "publicKey">, opts: VerifyOptions): { signedBy?: string; problems: string[] } {
  let signedBy: string | undefined;
  try {
    signedBy = publicKeyFingerprint(signature.publicKey);
  } catch {
    return { problems: ["its public key is not a valid PEM public key"] };
  }
  if (opts.publicKeyPem && publicKeyFingerprint(opts.publicKeyPem) !== signedBy)
    return { signedBy, problems: [`it was signed by key ${signedBy}, not by the expected key ${publicKeyFingerprint(opts.publicKeyPem)}`] };
  return { signedBy, problems: [] };
}

/** The chain segment: each hash recomputed from its hashed record, each link to the previous, ids consecutive. */
function chainProblems(report: EvidenceReport): string[] {
  const { records, chain } = report;
  if (!Array.isArray(records) || !chain) return ["it holds no records or no chain section"];
  const out: string[] = [];
  if (chain.count !== records.length)
    out.push(`its chain section counts ${chain.count} records but the file holds ${records.length}: records were removed or added`);
  if (records.length && records[0].id !== chain.firstId)
    out.push(`its chain section starts at record ${chain.firstId} but the first record in the file is ${records[0].id}`);
  if (records.length && (records.at(-1)!.id !== chain.lastId || records.at(-1)!.hash !== chain.lastHash))
    out.push(`its chain section ends at record ${chain.lastId} but the last record in the file is ${records.at(-1)!.id}`);
  let prev: ExportedRecord | undefined;
  for (const r of records) {
    const gap = prev && r.id !== prev.id + 1;
    if (gap)
      out.push(
        r.id > prev!.id + 1
          ? `record${r.id - prev!.id > 2 ? "s" : ""} ${prev!.id + 1}${r.id - prev!.id > 2 ? `–${r.id - 1} are` : " is"} missing: record ${r.id} follows record ${prev!.id}`
          : `record ${r.id} is out of order: it follows record ${prev!.id}`,
      );
    else if (r.prevHash !== (prev ? prev.hash : chain.anchor))
      out.push(
        prev
          ? `record ${r.id} does not link to record ${prev.id} (a record was removed, inserted or reordered)`
          : `record ${r.id} does not link to the chain's anchor`,
      );
    if (!r.hashedRecord || chainHash(r.prevHash, r.hashedRecord) !== r.hash) out.push(`record ${r.id} was edited: its hashed record does not match its hash`);
    else {
      const differ = FIELDS.filter(([mine, hashed]) => canonicalJson(r[mine] ?? null) !== canonicalJson(r.hashedRecord[hashed] ?? null)).map(([mine]) => mine);
      if (differ.length) out.push(`record ${r.id} was edited: its ${differ.join(", ")} differ${differ.length === 1 ? "s" : ""} from the hashed record`);
    }
    prev = r;
  }
  const ids = new Set(records.map((r) => r.id));
  for (const c of report.controls ?? [])
    for (const id of c.evidence?.recordIds ?? []) if (!ids.has(id)) out.push(`control ${c.id} cites record ${id}, which the file does not hold`);
  return out;
}

function verifyJson(file: string, bytes: Buffer, opts: VerifyOptions): EvidenceVerdict {
  let doc: EvidenceReport;
  try {
    doc = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    return { ok: false, file, problems: [`it is not valid JSON (${(err as Error).message}): the file was damaged or edited`] };
  }
  if (doc?.format !== "plum-backup-evidence")
    return { ok: false, file, problems: ['it is not a Plum backup evidence export (no format "plum-backup-evidence")'] };
  const { signature, ...signed } = doc;
  const problems: string[] = [];
  let signedBy: string | undefined;
  if (!signature?.value || !signature.publicKey) problems.push("it carries no signature");
  else if (signature.algorithm !== "ed25519") problems.push(`its signature algorithm is ${signature.algorithm}, not ed25519`);
  else {
    const signer = signerProblems(signature, opts);
    signedBy = signer.signedBy;
    problems.push(...signer.problems);
    if (!signatureMatches(canonicalJson(signed), signature))
      problems.push("its signature does not match its content: the file was changed after the appliance signed it");
  }
  problems.push(...chainProblems(doc));
  return { ok: problems.length === 0, file, problems, signedBy, records: Array.isArray(doc.records) ? doc.records.length : 0 };
}

function verifyDetached(file: string, bytes: Buffer, sigBytes: Buffer | undefined, opts: VerifyOptions): EvidenceVerdict {
  if (!sigBytes)
    return { ok: false, file, problems: [`its signature file ${path.basename(file)}.sig is missing: CSV and PDF exports are signed by a file beside them`] };
  let sig: DetachedSignature;
  try {
    sig = JSON.parse(sigBytes.toString("utf8"));
  } catch {
    return { ok: false, file, problems: [`its signature file ${path.basename(file)}.sig is not valid JSON`] };
  }
  if (sig?.format !== "plum-detached-signature" || sig.algorithm !== "ed25519" || !sig.value || !sig.publicKey)
    return { ok: false, file, problems: [`${path.basename(file)}.sig is not a Plum ed25519 signature file`] };
  const signer = signerProblems(sig, opts);
  const problems = [...signer.problems];
  const actual = sha256Hex(bytes);
  if (sig.sha256 !== actual)
    problems.push(`its sha256 is ${actual} but the signature file was made for ${sig.sha256}: the file was changed after it was signed`);
  if (!signatureMatches(bytes, sig)) problems.push("its signature does not match its bytes: the file was changed after the appliance signed it");
  return { ok: problems.length === 0, file, problems, signedBy: signer.signedBy };
}

/** One document of an export, by its name's extension; `sigBytes` is its detached signature when it has one. */
export function verifyEvidenceBytes(file: string, bytes: Buffer, sigBytes: Buffer | undefined, opts: VerifyOptions = {}): EvidenceVerdict {
  const ext = path.extname(file).toLowerCase();
  if (ext === ".json") return verifyJson(file, bytes, opts);
  if (ext === ".csv" || ext === ".pdf") return verifyDetached(file, bytes, sigBytes, opts);
  if (ext === ".zip") {
    let entries: Array<{ name: string; bytes: Buffer }>;
    try {
      entries = unzipBundle(bytes);
    } catch (err) {
      return { ok: false, file, problems: [`it cannot be read as a zip: ${(err as Error).message}`] };
    }
    const documents = entries.filter((e) => !e.name.endsWith(".sig"));
    const verdicts = documents.map((d) => verifyEvidenceBytes(d.name, d.bytes, entries.find((e) => e.name === `${d.name}.sig`)?.bytes, opts));
    const problems = documents.length === 0 ? ["the zip holds no evidence export"] : verdicts.flatMap((v) => v.problems.map((p) => `${v.file}: ${p}`));
    return { ok: problems.length === 0, file, problems, signedBy: verdicts[0]?.signedBy, entries: verdicts };
  }
  return { ok: false, file, problems: [`${ext || "a file without an extension"} is not an evidence export: expected .json, .csv, .pdf or .zip`] };
}

/**
 * Offline verification of an evidence export: JSON by its embedded signature, its records' hash chain and
 * each record against what its hash covers; CSV and PDF by `FILE.sig`; a console zip by each file inside.
 */
export function verifyEvidenceFile(file: string, opts: VerifyOptions = {}): EvidenceVerdict {
  if (!existsSync(file)) return { ok: false, file, problems: ["there is no such file"] };
  const sigFile = `${file}.sig`;
  return { ...verifyEvidenceBytes(file, readFileSync(file), existsSync(sigFile) ? readFileSync(sigFile) : undefined, opts), file };
}
