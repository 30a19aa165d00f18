import { createPublicKey } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { anchorSignatureValid } from "../../lib/chain-anchors.ts";
import { canonicalJson, chainHash } from "../../lib/hash-chain.ts";
import { unzipBundle } from "./evidence-bundle.ts";
import type { EvidencePin } from "./evidence-pin.ts";
import type { EvidenceReport, ExportedRecord } from "./evidence-report.ts";
import { publicKeyFingerprint, sha256Hex, signatureMatches, type DetachedSignature, type EmbeddedSignature } from "./evidence-signature.ts";

export interface EvidenceVerdict {
  /** The signature is valid, by the pinned key, and (JSON) the records hold together. */
  ok: boolean;
  file: string;
  /** Whether the signature matches the bytes under the key the file names (which proves nothing alone). */
  signature: "valid" | "invalid";
  /** Whether that key is the pinned one: `unpinned` when no pin was given, so the signer is NOT verified. */
  signer: "verified" | "unpinned" | "mismatch";
  /** Why it does not verify, one sentence each; empty when it does. */
  problems: string[];
  /** The fingerprint of the key that signed it. */
  signedBy?: string;
  /** The key it was checked against. */
  pin?: EvidencePin;
  /** JSON: how many records were chain-checked. */
  records?: number;
  /** A zip bundle: the verdict of each document in it. */
  entries?: EvidenceVerdict[];
}

export interface VerifyOptions {
  /**
   * The key the signer must be (by fingerprint): from the auditor (`--key`, `--fingerprint`) or the appliance's
   * own. Without one no export verifies: the key inside a file is the forger's as easily as the appliance's.
   */
  pin?: EvidencePin;
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

interface SignatureCheck {
  signature: EvidenceVerdict["signature"];
  signer: EvidenceVerdict["signer"];
  signedBy?: string;
  problems: string[];
}

/**
 * The signature over `bytes` under the key the file names, that key against the pin, and each fingerprint
 * the file states of itself (`fields`: where it says it) against the key it must be: the pinned one, or
 * without a pin the one that signed.
 */
function signatureCheck(
  signed: "content" | "bytes",
  bytes: Buffer | string,
  signature: Pick<EmbeddedSignature, "publicKey" | "value">,
  fields: Array<{ name: string; value: unknown }>,
  opts: VerifyOptions,
): SignatureCheck {
  let signedBy: string;
  try {
    if (createPublicKey(signature.publicKey).asymmetricKeyType !== "ed25519") throw new Error("not ed25519");
    signedBy = publicKeyFingerprint(signature.publicKey);
  } catch {
    return { signature: "invalid", signer: opts.pin ? "mismatch" : "unpinned", problems: ["its public key is not a valid ed25519 public key (PEM)"] };
  }
  const problems: string[] = [];
  const valid = signatureMatches(bytes, signature);
  if (!valid) problems.push(`its signature does not match its ${signed}: the file was changed after the appliance signed it`);
  const { pin } = opts;
  const signer = !pin ? "unpinned" : pin.fingerprint === signedBy ? "verified" : "mismatch";
  if (signer === "unpinned")
    problems.push(`no key is pinned, so its signer is NOT verified: it names its own key, ${signedBy}, and anyone can make a key and sign with it`);
  if (signer === "mismatch") problems.push(`it was signed by key ${signedBy}, not by the pinned key ${pin!.fingerprint} (${pin!.source})`);
  const expected = pin?.fingerprint ?? signedBy;
  for (const field of fields)
    if (field.value !== undefined && field.value !== expected)
      problems.push(
        `its ${field.name} field names key ${String(field.value)}, not ${pin ? `the pinned key ${pin.fingerprint}` : `the key that signed it, ${signedBy}`}`,
      );
  return { signature: valid ? "valid" : "invalid", signer, signedBy, problems };
}

/** The fields a chain checkpoint carries, and the type of each (what a missing or mistyped field is reported against). */
const CHECKPOINT_FIELDS = {
  seq: "integer",
  prev: "string",
  chain: "string",
  lastId: "integer",
  lastHash: "string",
  at: "string",
  reason: "string",
  key: "string",
  signature: "string",
} as const;

/**
 * The signed checkpoint the export carries (the evidence chain's head when it was cut, from the appliance's
 * anchor file): every field present, signed by the key that signed the file, naming the key it is checked
 * against (`expectedKey`: the pin, else the file's signer; none when neither is known, itself a problem), and
 * agreeing with the records the file holds. A file whose records were rewritten and re-hashed still has to
 * match a checkpoint it cannot re-sign.
 */
function checkpointProblems(report: EvidenceReport, signerPem: string, expectedKey: string | undefined): string[] {
  const checkpoint = report.chain?.checkpoint;
  if (!checkpoint) return [];
  const name = `its chain checkpoint (anchor #${Number.isInteger(checkpoint.seq) ? checkpoint.seq : "?"})`;
  const fields = checkpoint as unknown as Record<string, unknown>;
  const missing = Object.entries(CHECKPOINT_FIELDS)
    .filter(([field, type]) => (type === "integer" ? !Number.isInteger(fields[field]) : typeof fields[field] !== "string" || fields[field] === ""))
    .map(([field, type]) => `${field} (${type === "integer" ? "an integer" : "a string"})`);
  if (missing.length > 0) return [`${name} lacks ${missing.join(", ")}: it cannot be checked, so the records it should cover are not anchored`];
  const out: string[] = [];
  if (expectedKey === undefined) out.push(`${name} cannot be checked against a key: none is pinned and the file's own public key is not a valid ed25519 key`);
  else if (checkpoint.key !== expectedKey) out.push(`${name} names key ${checkpoint.key}, not ${expectedKey}`);
  if (!anchorSignatureValid(checkpoint, signerPem)) out.push(`${name} is not signed by the key that signed the file`);
  const record = Array.isArray(report.records) ? report.records.find((r) => r.id === checkpoint.lastId) : undefined;
  if (record && record.hash !== checkpoint.lastHash)
    out.push(`record ${record.id}'s hash does not match the chain checkpoint (anchor #${checkpoint.seq}) taken at ${checkpoint.at}: the chain was rewritten`);
  if (report.chain?.lastId != null && report.chain.lastId > checkpoint.lastId)
    out.push(`its records go on to ${report.chain.lastId}, past its chain checkpoint at ${checkpoint.lastId}`);
  return out;
}

/** A file that cannot be checked at all (not an export, unreadable, no signature): nothing about it is verified. */
function refusedVerdict(file: string, opts: VerifyOptions, problem: string): EvidenceVerdict {
  return { ok: false, file, signature: "invalid", signer: opts.pin ? "mismatch" : "unpinned", problems: [problem], pin: opts.pin };
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
  const refused = (problem: string) => refusedVerdict(file, opts, problem);
  let doc: EvidenceReport;
  try {
    doc = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    return refused(`it is not valid JSON (${(err as Error).message}): the file was damaged or edited`);
  }
  if (doc?.format !== "plum-backup-evidence") return refused('it is not a Plum backup evidence export (no format "plum-backup-evidence")');
  const { signature, ...signed } = doc;
  if (!signature?.value || !signature.publicKey) return { ...refused("it carries no signature"), records: Array.isArray(doc.records) ? doc.records.length : 0 };
  if (signature.algorithm !== "ed25519") return refused(`its signature algorithm is ${signature.algorithm}, not ed25519`);
  const check = signatureCheck(
    "content",
    canonicalJson(signed),
    signature,
    [{ name: "appliance.publicKeyFingerprint", value: doc.appliance?.publicKeyFingerprint }],
    opts,
  );
  const problems = [...check.problems, ...chainProblems(doc), ...checkpointProblems(doc, signature.publicKey, opts.pin?.fingerprint ?? check.signedBy)];
  return {
    ok: problems.length === 0,
    file,
    signature: check.signature,
    signer: check.signer,
    problems,
    signedBy: check.signedBy,
    pin: opts.pin,
    records: Array.isArray(doc.records) ? doc.records.length : 0,
  };
}

/** The fingerprint a CSV export states in its `export,public_key_fingerprint,…` row, if it has one. */
function csvFingerprint(bytes: Buffer): string | undefined {
  return /^export,public_key_fingerprint,([^\r\n]*)$/m.exec(bytes.toString("utf8"))?.[1];
}

function verifyDetached(file: string, bytes: Buffer, sigBytes: Buffer | undefined, opts: VerifyOptions): EvidenceVerdict {
  const refused = (problem: string) => refusedVerdict(file, opts, problem);
  if (!sigBytes) return refused(`its signature file ${path.basename(file)}.sig is missing: CSV and PDF exports are signed by a file beside them`);
  let sig: DetachedSignature;
  try {
    sig = JSON.parse(sigBytes.toString("utf8"));
  } catch {
    return refused(`its signature file ${path.basename(file)}.sig is not valid JSON`);
  }
  if (sig?.format !== "plum-detached-signature" || sig.algorithm !== "ed25519" || !sig.value || !sig.publicKey)
    return refused(`${path.basename(file)}.sig is not a Plum ed25519 signature file`);
  const fields: Array<{ name: string; value: unknown }> = [{ name: `${path.basename(file)}.sig publicKeyFingerprint`, value: sig.publicKeyFingerprint }];
  if (path.extname(file).toLowerCase() === ".csv") fields.push({ name: "public_key_fingerprint", value: csvFingerprint(bytes) });
  const check = signatureCheck("bytes", bytes, sig, fields, opts);
  const problems: string[] = [];
  const actual = sha256Hex(bytes);
  if (sig.sha256 !== actual)
    problems.push(`its sha256 is ${actual} but the signature file was made for ${sig.sha256}: the file was changed after it was signed`);
  problems.push(...check.problems);
  return { ok: problems.length === 0, file, signature: check.signature, signer: check.signer, problems, signedBy: check.signedBy, pin: opts.pin };
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
      return refusedVerdict(file, opts, `it cannot be read as a zip: ${(err as Error).message}`);
    }
    const documents = entries.filter((e) => !e.name.endsWith(".sig"));
    const verdicts = documents.map((d) => verifyEvidenceBytes(d.name, d.bytes, entries.find((e) => e.name === `${d.name}.sig`)?.bytes, opts));
    const problems = documents.length === 0 ? ["the zip holds no evidence export"] : verdicts.flatMap((v) => v.problems.map((p) => `${v.file}: ${p}`));
    const worst = <T extends string>(values: T[], order: T[]) => order.find((o) => values.includes(o)) ?? order.at(-1)!;
    return {
      ok: problems.length === 0,
      file,
      signature:
        documents.length === 0
          ? "invalid"
          : worst(
              verdicts.map((v) => v.signature),
              ["invalid", "valid"],
            ),
      signer: worst(
        verdicts.map((v) => v.signer),
        ["mismatch", "unpinned", "verified"],
      ),
      problems,
      signedBy: verdicts[0]?.signedBy,
      pin: opts.pin,
      entries: verdicts,
    };
  }
  return refusedVerdict(file, opts, `${ext || "a file without an extension"} is not an evidence export: expected .json, .csv, .pdf or .zip`);
}

/**
 * Offline verification of an evidence export: JSON by its embedded signature, its records' hash chain and
 * each record against what its hash covers; CSV and PDF by `FILE.sig`; a console zip by each file inside.
 * Each signature counts only when its key is the pinned one (`opts.pin`), and every fingerprint the file
 * states of itself must name that key.
 */
export function verifyEvidenceFile(file: string, opts: VerifyOptions = {}): EvidenceVerdict {
  if (!existsSync(file)) return refusedVerdict(file, opts, "there is no such file");
  const sigFile = `${file}.sig`;
  return { ...verifyEvidenceBytes(file, readFileSync(file), existsSync(sigFile) ? readFileSync(sigFile) : undefined, opts), file };
}
