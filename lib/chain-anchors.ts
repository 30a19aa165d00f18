import { createHash, sign, verify } from "node:crypto";
import { chmodSync, closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import path from "node:path";
import { QueryTypes, type Sequelize } from "sequelize";
import { homeLayout } from "./paths.ts";
import type { Secrets } from "./secrets.ts";
import { canonicalJson, GENESIS_HASH, type ChainVerdict } from "./hash-chain.ts";
import { emitChainEvent, type ChainHead, type Checkpoint } from "./hash-chained-log.ts";
import { publicKeyFingerprint } from "./key-fingerprint.ts";

/**
 * Checkpoints of the hash-chained logs, kept outside the database. A database superuser can switch off the
 * append-only trigger and recompute a whole chain and its head (nothing inside PostgreSQL can stop that); what
 * it cannot do is sign. So the agent signs `(chain, last id, last hash, time)` with the appliance key and
 * appends it to PLUM_HOME/anchors/chain-anchors.jsonl, one JSON line each. The lines form a chain of their own
 * (each carries its number and the sha256 of the line before), whose head is kept in the database
 * (hash_chain_heads, chain "chain_anchors"): an edited line fails its signature, a deleted or reordered one
 * breaks the links, a deleted last line no longer matches the head the database recorded.
 */
export const ANCHOR_HEAD = "chain_anchors";

/** Why a checkpoint was taken. */
export type AnchorReason = "rows" | "interval" | "export" | "start" | "stop";

/** One line of the anchor file, in this key order. */
export interface ChainAnchor extends Checkpoint {
  /** 1, 2, 3, … in file order. */
  seq: number;
  /** sha256 (hex) of the previous line's bytes; 64 zeros for the first line. */
  prev: string;
  chain: string;
  lastId: number;
  lastHash: string;
  at: string;
  reason: AnchorReason;
  /** "SHA256:…" of the public key that signs (the appliance key). */
  key: string;
  /** ed25519, base64, over anchorPayload(): every field above. */
  signature: string;
}

export interface AnchorKeys {
  /** Needed to take checkpoints; verifying needs the public key only. */
  signingKeyPem?: string;
  publicKeyPem: string;
}

export interface AnchorSettings {
  file: string;
  keys: AnchorKeys;
}

/** The anchor file of an appliance and the appliance key that signs (and checks) it. */
export function anchorSettingsOf(home: string, secrets: Pick<Secrets, "signingPrivateKeyPem" | "signingPublicKeyPem">): AnchorSettings {
  return { file: homeLayout(home).anchorFile, keys: { signingKeyPem: secrets.signingPrivateKeyPem, publicKeyPem: secrets.signingPublicKeyPem } };
}

/** What the signature covers: a fixed prefix (so no other signed document of this key can pass for an anchor) and the fields. */
export function anchorPayload(a: Omit<ChainAnchor, "signature">): string {
  const { seq, prev, chain, lastId, lastHash, at, reason, key } = a;
  return `plum-chain-anchor/1\n${canonicalJson({ seq, prev, chain, lastId, lastHash, at, reason, key })}`;
}

export function lineHash(line: string): string {
  return createHash("sha256").update(line).digest("hex");
}

export function anchorLine(fields: Omit<ChainAnchor, "key" | "signature">, keys: AnchorKeys): { anchor: ChainAnchor; line: string } {
  if (!keys.signingKeyPem) throw new Error("a checkpoint needs the appliance's signing key");
  const unsigned = { ...fields, key: publicKeyFingerprint(keys.publicKeyPem) };
  const anchor: ChainAnchor = { ...unsigned, signature: sign(null, Buffer.from(anchorPayload(unsigned)), keys.signingKeyPem).toString("base64") };
  const { seq, prev, chain, lastId, lastHash, at, reason, key, signature } = anchor;
  return { anchor, line: JSON.stringify({ seq, prev, chain, lastId, lastHash, at, reason, key, signature }) };
}

/** Whether `anchor` is signed by `publicKeyPem` (false, never a throw, on a malformed value). */
export function anchorSignatureValid(anchor: ChainAnchor, publicKeyPem: string): boolean {
  try {
    return verify(null, Buffer.from(anchorPayload(anchor)), publicKeyPem, Buffer.from(anchor.signature, "base64"));
  } catch {
    return false;
  }
}

function isAnchorShape(v: unknown): v is ChainAnchor {
  const a = v as Record<string, unknown>;
  return (
    typeof a === "object" &&
    a !== null &&
    Number.isInteger(a.seq) &&
    typeof a.prev === "string" &&
    typeof a.chain === "string" &&
    Number.isInteger(a.lastId) &&
    typeof a.lastHash === "string" &&
    typeof a.at === "string" &&
    typeof a.reason === "string" &&
    typeof a.key === "string" &&
    typeof a.signature === "string"
  );
}

export interface AnchorFileVerdict {
  file: string;
  lines: number;
  /** The anchors whose signature holds, in file order (an anchor is evidence whatever happened to its neighbours). */
  anchors: ChainAnchor[];
  /** One sentence each, naming the line; empty when the file is whole. */
  problems: string[];
  /** The file's last line: its number as written and the hash the next line links to. */
  last?: { seq: number; lineHash: string };
}

/** Check the anchor file's text: every line's signature, number and link to the line before. */
export function verifyAnchorText(file: string, text: string, publicKeyPem: string): AnchorFileVerdict {
  const out: AnchorFileVerdict = { file, lines: 0, anchors: [], problems: [] };
  const lines = text.split("\n");
  const cut = lines.at(-1) !== "";
  if (!cut) lines.pop();
  const fingerprint = publicKeyFingerprint(publicKeyPem);
  let prevHash = GENESIS_HASH;
  let prevSeq = 0;
  lines.forEach((line, i) => {
    const n = i + 1;
    out.lines = n;
    const hash = lineHash(line);
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    if (!isAnchorShape(parsed)) {
      out.problems.push(`line ${n} is not an anchor${cut && n === lines.length ? " (it is cut short)" : ""}: ${JSON.stringify(line.slice(0, 60))}`);
      prevHash = hash;
      prevSeq++;
      out.last = { seq: prevSeq, lineHash: hash };
      return;
    }
    const a = parsed;
    const what = `line ${n} (anchor #${a.seq}, ${a.chain} row ${a.lastId})`;
    if (a.seq !== prevSeq + 1)
      out.problems.push(
        a.seq > prevSeq + 1
          ? `${what} follows anchor #${prevSeq}: anchor${a.seq - prevSeq > 2 ? `s #${prevSeq + 1}–#${a.seq - 1} were` : ` #${prevSeq + 1} was`} deleted`
          : `${what} follows anchor #${prevSeq}: the lines are out of order`,
      );
    else if (a.prev !== prevHash) out.problems.push(`${what} does not link to line ${n - 1}: a line before it was edited, replaced or inserted`);
    if (a.key !== fingerprint) out.problems.push(`${what} names key ${a.key}, not the appliance key ${fingerprint}`);
    else if (!anchorSignatureValid(a, publicKeyPem)) out.problems.push(`${what} was edited: its signature does not match its content`);
    else out.anchors.push(a);
    prevHash = hash;
    prevSeq = a.seq;
    out.last = { seq: a.seq, lineHash: hash };
  });
  if (cut && lines.length && out.problems.every((p) => !p.startsWith(`line ${lines.length} `)))
    out.problems.push(`line ${lines.length} has no line end: the file was cut or appended to by hand`);
  return out;
}

/** The anchor file's head as the database recorded it at each checkpoint. */
export async function recordedAnchorHead(sequelize: Sequelize): Promise<{ seq: number; lineHash: string } | undefined> {
  const [row] = await sequelize.query<{ last_id: string; last_hash: string }>("select last_id, last_hash from hash_chain_heads where chain = :chain", {
    replacements: { chain: ANCHOR_HEAD },
    type: QueryTypes.SELECT,
  });
  return row ? { seq: Number(row.last_id), lineHash: row.last_hash } : undefined;
}

/** Read and check the anchor file, and compare its end with the head the database recorded. */
export async function verifyAnchorFile(sequelize: Sequelize, settings: AnchorSettings): Promise<AnchorFileVerdict> {
  const text = existsSync(settings.file) ? readFileSync(settings.file, "utf8") : "";
  const verdict = verifyAnchorText(settings.file, text, settings.keys.publicKeyPem);
  const recorded = await recordedAnchorHead(sequelize);
  if (!recorded) return verdict;
  const lastSeq = verdict.last?.seq ?? 0;
  if (recorded.seq > lastSeq) {
    const gone = recorded.seq - lastSeq;
    verdict.problems.push(
      lastSeq === 0
        ? `the anchor file is ${text ? "unreadable" : "missing or empty"}, but the database recorded ${recorded.seq} anchor${recorded.seq === 1 ? "" : "s"}: it was deleted or replaced`
        : `the anchor file ends at anchor #${lastSeq} (line ${verdict.lines}), but the database recorded anchor #${recorded.seq} as the newest: the last ${gone === 1 ? "line was" : `${gone} lines were`} deleted`,
    );
  } else if (recorded.seq === lastSeq && verdict.last && verdict.last.lineHash !== recorded.lineHash) {
    verdict.problems.push(`line ${verdict.lines} (anchor #${lastSeq}) is not the line the agent wrote: it differs from the one the database recorded`);
  }
  return verdict;
}

/** The last line of the file and its hash, read from its tail (the file only grows). */
function lastLineOf(file: string): { seq: number; lineHash: string; endsWithNewline: boolean } | undefined {
  if (!existsSync(file)) return undefined;
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return undefined;
    const length = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    const text = buf.toString("utf8");
    const endsWithNewline = text.endsWith("\n");
    const line = (endsWithNewline ? text.slice(0, -1) : text).split("\n").at(-1)!;
    let seq = 0;
    try {
      seq = Number((JSON.parse(line) as { seq?: unknown }).seq) || 0;
    } catch {
      seq = 0;
    }
    return { seq, lineHash: lineHash(line), endsWithNewline };
  } finally {
    closeSync(fd);
  }
}

/** Append one line (and its fsync); the folder 0755 and the file 0644, so anyone may read and only the agent's user write. */
function appendLine(file: string, line: string, terminatePrevious: boolean): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const fd = openSync(file, "a", 0o644);
  try {
    writeSync(fd, (terminatePrevious ? "\n" : "") + line + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(file, 0o644);
}

/** What an anchor is taken of: a hash-chained log (HashChainedLog fits). */
export interface AnchoredLog {
  readonly sequelize: Sequelize;
  readonly chain: string;
  head(): Promise<ChainHead | undefined>;
}

/**
 * Sign the chain's committed head into the anchor file, serialised across processes (the agent, plumctl) by an
 * advisory lock in plum_ops, and record the file's new head in the database in the same transaction.
 * Nothing is written for a chain without rows, or when `unless` says the head is already anchored.
 */
export async function takeAnchor(props: {
  log: AnchoredLog;
  settings: AnchorSettings;
  reason: AnchorReason;
  unless?: (head: ChainHead) => boolean;
  now?: () => Date;
}): Promise<ChainAnchor | undefined> {
  const { log, settings } = props;
  const anchor = await log.sequelize.transaction(async (t) => {
    await log.sequelize.query("select pg_advisory_xact_lock(hashtext(:chain))", { replacements: { chain: ANCHOR_HEAD }, transaction: t });
    const head = await log.head();
    if (!head || props.unless?.(head)) return undefined;
    const last = lastLineOf(settings.file);
    const [recorded] = await log.sequelize.query<{ last_id: string }>("select last_id from hash_chain_heads where chain = :chain", {
      replacements: { chain: ANCHOR_HEAD },
      type: QueryTypes.SELECT,
      transaction: t,
    });
    // A damaged last line still gets linked to (verification names it); numbering never goes back.
    const seq = Math.max(last?.seq ?? 0, Number(recorded?.last_id ?? 0)) + 1;
    const { anchor, line } = anchorLine(
      {
        seq,
        prev: last?.lineHash ?? GENESIS_HASH,
        chain: log.chain,
        lastId: head.lastId,
        lastHash: head.lastHash,
        at: (props.now?.() ?? new Date()).toISOString(),
        reason: props.reason,
      },
      settings.keys,
    );
    appendLine(settings.file, line, !!last && !last.endsWithNewline);
    await log.sequelize.query(
      "insert into hash_chain_heads (chain, last_id, last_hash) values (:chain, :seq, :hash) on conflict (chain) do update set last_id = excluded.last_id, last_hash = excluded.last_hash",
      { replacements: { chain: ANCHOR_HEAD, seq, hash: lineHash(line) }, transaction: t },
    );
    return anchor;
  });
  if (anchor) emitChainEvent(log.sequelize, "anchor", anchor);
  return anchor;
}

/** The newest signed anchor of `chain` in a checked anchor file. */
export function newestAnchor(file: AnchorFileVerdict, chain: string): ChainAnchor | undefined {
  return file.anchors.filter((a) => a.chain === chain).at(-1);
}

export interface AnchorCheck {
  ok: boolean;
  /** The newest anchor of the chain, if any. */
  anchor?: ChainAnchor;
  /** How many rows the table holds now. */
  rows: number;
  /** One sentence for a terminal or a page. */
  message: string;
}

const span = (lastId: number) => (lastId === 1 ? "row 1" : `rows 1–${lastId}`);

/**
 * Compare the chain in the database with every one of its anchors. Each anchored row must still carry the hash
 * that was signed; the newest anchor that no longer matches names the rewrite (an anchor taken of the chain
 * after it was rewritten matches it, and dates the rewrite).
 */
export async function checkAgainstAnchors(
  log: AnchoredLog & { count(): Promise<number>; hashesOf(ids: number[]): Promise<Map<number, string>> },
  file: AnchorFileVerdict,
): Promise<AnchorCheck> {
  const mine = file.anchors.filter((a) => a.chain === log.chain);
  const rows = await log.count();
  const newest = mine.at(-1);
  if (!newest) return { ok: true, rows, message: `not anchored yet: no checkpoint of ${log.chain} in ${file.file}` };
  const ids = [...new Set(mine.map((a) => a.lastId))];
  const hashes = new Map<number, string>();
  for (let i = 0; i < ids.length; i += 5000) for (const [id, hash] of await log.hashesOf(ids.slice(i, i + 5000))) hashes.set(id, hash);
  const matches = (a: ChainAnchor) => hashes.get(a.lastId) === a.lastHash;
  const broken = [...mine].reverse().find((a) => !matches(a));
  if (!broken) {
    const newer =
      rows > newest.lastId ? `; row${rows - newest.lastId > 1 ? `s ${newest.lastId + 1}–${rows} are` : ` ${rows} is`} newer than the newest anchor` : "";
    return { ok: true, anchor: newest, rows, message: `${span(newest.lastId)} match anchor #${newest.seq} (${newest.at})${newer}` };
  }
  const held = hashes.has(broken.lastId)
    ? `the database now holds ${rows} rows and row ${broken.lastId} does not match anchor #${broken.seq}`
    : `the database now holds ${rows} rows whose head does not match anchor #${broken.seq}`;
  const before = mine.slice(0, mine.indexOf(broken)).reverse().find(matches);
  const after = mine.slice(mine.indexOf(broken) + 1).find(matches);
  const since = before
    ? `; ${span(before.lastId)} still match anchor #${before.seq} (${before.at}), so the rewrite is after row ${before.lastId}`
    : "; no earlier anchor matches: the chain was rewritten from its start";
  const dated = after ? `; anchor #${after.seq} (${after.at}) was taken of the rewritten chain, so it was rewritten between ${broken.at} and ${after.at}` : "";
  return { ok: false, anchor: broken, rows, message: `${span(broken.lastId)} anchored at ${broken.at} (anchor #${broken.seq}); ${held}${since}${dated}` };
}

/** A chain's verdict with its anchors: its own links, its agreement with the newest anchor, and the anchor file. */
export interface AnchoredVerdict {
  ok: boolean;
  chain: ChainVerdict;
  anchors: AnchorCheck;
  file: Pick<AnchorFileVerdict, "file" | "lines" | "problems">;
}

export async function verifyAnchoredChain(
  log: AnchoredLog & { verify(): Promise<ChainVerdict>; count(): Promise<number>; hashesOf(ids: number[]): Promise<Map<number, string>> },
  settings: AnchorSettings,
): Promise<AnchoredVerdict> {
  const chain = await log.verify();
  const file = await verifyAnchorFile(log.sequelize, settings);
  const anchors = await checkAgainstAnchors(log, file);
  return { ok: chain.ok && anchors.ok && file.problems.length === 0, chain, anchors, file: { file: file.file, lines: file.lines, problems: file.problems } };
}
