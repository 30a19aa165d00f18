import { createHash } from "node:crypto";

/** A secret the appliance holds, by value: every occurrence of it (in any usual encoding) is masked. */
export interface KnownSecret {
  /** What it is, as the marker and redactions.json name it: "restic-password", "control-token", … */
  kind: string;
  value: string;
}

/** Where something was masked: never the secret itself, only its kind and how many times. */
export interface Redaction {
  member: string;
  kind: string;
  count: number;
  /** "known": a secret the appliance holds, matched by value; "pattern": something shaped like a secret. */
  by: "known" | "pattern";
}

export const marker = (kind: string) => `***redacted:${kind}***`;

// Shorter values would mask ordinary words; every secret the appliance makes is far longer.
const MIN_SECRET_LENGTH = 8;

function bytesOf(value: string): Buffer[] {
  const forms = [Buffer.from(value, "utf8")];
  // A secret stored as hex or base64url text (the session key, the passwords): its decoded bytes, too.
  if (/^(?:[0-9a-f]{2}){8,}$/i.test(value)) forms.push(Buffer.from(value, "hex"));
  else if (/^[A-Za-z0-9_-]{16,}={0,2}$/.test(value)) forms.push(Buffer.from(value, "base64url"));
  return forms;
}

/** The spellings of one secret a collected file may hold: as written, JSON-escaped, URL-encoded, base64, hex. */
export function encodingsOf(value: string): string[] {
  const found = new Set<string>([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)]);
  for (const bytes of bytesOf(value)) {
    found.add(bytes.toString("base64"));
    found.add(bytes.toString("base64").replace(/=+$/, ""));
    found.add(bytes.toString("base64url"));
    found.add(bytes.toString("hex"));
    found.add(bytes.toString("hex").toUpperCase());
  }
  // A PEM key: its base64 body, whole and line by line (a log may have wrapped or joined it), and its DER bytes.
  const body = /-----BEGIN [^-]+-----([\s\S]*?)-----END [^-]+-----/.exec(value)?.[1];
  if (body) {
    const lines = body.split(/\s+/).filter((l) => l.length >= 16);
    for (const line of lines) found.add(line);
    const joined = lines.join("");
    found.add(joined);
    found.add(Buffer.from(joined, "base64").toString("hex"));
  }
  return [...found].filter((v) => v.length >= MIN_SECRET_LENGTH);
}

const SECRET_NAME = "(?:password|passwd|secret|token|api_?key|private_?key|csrf|cookie|authorization|session_?id)";
// Already masked (by the appliance's own logger, or here), a placeholder of a sample, or a value no secret has.
const NOT_A_SECRET = /^(?:\*\*\*redacted:.*|\[redacted\]|REDACTED|PASSWORD|true|false|null|\d+|[|>][-+]?)$/;

/** What looks like a secret, whatever its value: masked even when the appliance does not know it. */
const PATTERNS: Array<{ kind: string; re: RegExp; keep?: number }> = [
  { kind: "private-key-pem", re: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----/g },
  { kind: "bearer-token", re: /(\bBearer\s+)([A-Za-z0-9._~+/=-]{8,})/gi, keep: 1 },
  { kind: "url-password", re: /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@"']+:)([^\s@/"']+)(?=@)/gi, keep: 1 },
  { kind: "merchant-api-key", re: /\bpk_[A-Za-z0-9_-]{32,}/g },
  { kind: "voucher-share-token", re: /(\/v\/)([A-Za-z0-9_-]{20,100})/g, keep: 1 },
  { kind: "voucher-code", re: /\b[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}\b/g },
  // "password": "…" in JSON, password: … in YAML, PASSWORD=… in an environment listing.
  { kind: "secret-field", re: new RegExp(`("[\\w.-]*${SECRET_NAME}[\\w.-]*"\\s*:\\s*")((?:[^"\\\\]|\\\\.)+)(?=")`, "gi"), keep: 1 },
  { kind: "secret-field", re: new RegExp(`^(\\s*[\\w.-]*${SECRET_NAME}[\\w.-]*\\s*[:=]\\s*)(\\S.*)$`, "gim"), keep: 1 },
];

// Runs of the characters the bulk tokens are made of (base64url share tokens, session tokens, voucher codes).
const TOKEN_RUN = /[A-Za-z0-9_-]{12,}/g;
// The databases keep some tokens only as their sha256 (console and product sessions, merchant API keys).
const MIN_HASHED_TOKEN_LENGTH = 20;

// Standard base64 (with + and /) of a token: the runs above stop at those characters.
const BASE64_RUN = /[A-Za-z0-9+/]{16,}={0,2}/g;

/** A run as written, and what it decodes to when it is hex or base64 of printable text (a token encoded once more). */
function decodings(run: string): string[] {
  const found = [run];
  const printable = (text: string) => /^[\x21-\x7e]+$/.test(text);
  if (/^(?:[0-9a-fA-F]{2})+$/.test(run)) {
    const text = Buffer.from(run, "hex").toString("latin1");
    if (printable(text)) found.push(text);
  }
  const bare = run.replace(/=+$/, "");
  const text = Buffer.from(bare, /[+/]/.test(bare) ? "base64" : "base64url").toString("latin1");
  const again = Buffer.from(text, "latin1")
    .toString(/[+/]/.test(bare) ? "base64" : "base64url")
    .replace(/=+$/, "");
  if (printable(text) && again === bare) found.push(text);
  return found;
}

export const sha256Hex = (text: string) => createHash("sha256").update(text).digest("hex");

/** Secrets known by value in bulk, and secrets the databases know only by their sha256 (hex). */
export interface TokenSets {
  /** value → kind */
  byValue: Map<string, string>;
  /** sha256 hex of the value → kind */
  byHash: Map<string, string>;
}

/**
 * Masks secrets in the collected text before anything is written into a bundle: first every known secret in
 * each of its encodings, then bulk tokens (share tokens, session ids) looked up by value, then patterns.
 * It counts what it masked per member and kind (redactions.json), never keeping a secret's value.
 */
export class Redactor {
  private readonly spellings: Array<{ kind: string; text: string }>;
  private readonly counts = new Map<string, Redaction>();

  constructor(
    known: KnownSecret[],
    /** Many secrets of one shape: looked up per token instead of searched for one by one. */
    private readonly tokens: TokenSets = { byValue: new Map(), byHash: new Map() },
  ) {
    this.spellings = known
      .filter((s) => s.value.length >= MIN_SECRET_LENGTH)
      .flatMap((s) => encodingsOf(s.value).map((text) => ({ kind: s.kind, text })))
      .sort((a, b) => b.text.length - a.text.length); // a longer spelling first: a PEM before its lines
  }

  /** The text with every secret masked; what was masked is added to `redactions`. */
  redact(member: string, text: string): string {
    let out = text;
    for (const { kind, text: secret } of this.spellings) {
      if (!out.includes(secret)) continue;
      const parts = out.split(secret);
      this.count(member, kind, "known", parts.length - 1);
      out = parts.join(marker(kind));
    }
    if (this.tokens.byValue.size + this.tokens.byHash.size > 0) {
      const mask = (run: string) => {
        const kind = this.tokenKind(run);
        if (!kind) return run;
        this.count(member, kind, "known", 1);
        return marker(kind);
      };
      out = out.replace(TOKEN_RUN, mask).replace(BASE64_RUN, mask);
    }
    for (const { kind, re, keep } of PATTERNS) {
      out = out.replace(re, (...m: string[]) => {
        const value = keep === undefined ? m[0] : m[keep + 1];
        if (NOT_A_SECRET.test(value) || value.includes("***redacted:")) return m[0];
        this.count(member, kind, "pattern", 1);
        return keep === undefined ? marker(kind) : m.slice(1, keep + 1).join("") + marker(kind);
      });
    }
    return out;
  }

  /** The kind of a bulk token this run is, as written or hex- or base64-encoded; undefined when it is none. */
  private tokenKind(run: string): string | undefined {
    for (const candidate of decodings(run)) {
      const kind =
        this.tokens.byValue.get(candidate) ??
        (this.tokens.byHash.size > 0 && candidate.length >= MIN_HASHED_TOKEN_LENGTH ? this.tokens.byHash.get(sha256Hex(candidate)) : undefined);
      if (kind) return kind;
    }
    return undefined;
  }

  get redactions(): Redaction[] {
    return [...this.counts.values()].sort((a, b) => a.member.localeCompare(b.member) || a.kind.localeCompare(b.kind));
  }

  private count(member: string, kind: string, by: Redaction["by"], n: number): void {
    const key = `${member}\0${kind}\0${by}`;
    const entry = this.counts.get(key) ?? { member, kind, count: 0, by };
    entry.count += n;
    this.counts.set(key, entry);
  }
}
