import { expect } from "chai";
import { generateKeyPairSync } from "node:crypto";
import { anchorLine, anchorPayload, lineHash, verifyAnchorText, type AnchorKeys, type ChainAnchor } from "../../lib/chain-anchors.ts";
import { GENESIS_HASH } from "../../lib/hash-chain.ts";
import { publicKeyFingerprint } from "../../lib/key-fingerprint.ts";

function keys(): AnchorKeys {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    signingKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** A file of `n` anchors of two chains, as takeAnchor writes it. */
function file(k: AnchorKeys, n: number): string[] {
  const lines: string[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const { line } = anchorLine(
      {
        seq,
        prev,
        chain: seq % 2 ? "audit_log" : "backup_evidence",
        lastId: seq * 10,
        lastHash: "ab".repeat(32),
        at: `2026-12-0${seq}T00:00:00.000Z`,
        reason: "rows",
      },
      k,
    );
    lines.push(line);
    prev = lineHash(line);
  }
  return lines;
}

const text = (lines: string[]) => lines.map((l) => l + "\n").join("");

describe("chain anchors: the anchor file's format", () => {
  const k = keys();

  it("writes one JSON line per anchor, in a fixed key order, numbered and linked to the line before", () => {
    const lines = file(k, 2);
    const first = JSON.parse(lines[0]) as ChainAnchor;
    expect(Object.keys(first)).to.deep.equal(["seq", "prev", "chain", "lastId", "lastHash", "at", "reason", "key", "signature"]);
    expect(first).to.include({ seq: 1, prev: GENESIS_HASH, chain: "audit_log", lastId: 10, reason: "rows", key: publicKeyFingerprint(k.publicKeyPem) });
    expect((JSON.parse(lines[1]) as ChainAnchor).prev).to.equal(lineHash(lines[0]));
    expect(anchorPayload(first)).to.match(/^plum-chain-anchor\/1\n\{"at":"2026-12-01T00:00:00.000Z","chain":"audit_log","key":"SHA256:/);
  });

  it("verifies a whole file and returns its anchors and its last line", () => {
    const lines = file(k, 4);
    const v = verifyAnchorText("f", text(lines), k.publicKeyPem);
    expect(v.problems).to.deep.equal([]);
    expect(v.lines).to.equal(4);
    expect(v.anchors.map((a) => a.seq)).to.deep.equal([1, 2, 3, 4]);
    expect(v.last).to.deep.equal({ seq: 4, lineHash: lineHash(lines[3]) });
    expect(verifyAnchorText("f", "", k.publicKeyPem)).to.deep.equal({ file: "f", lines: 0, anchors: [], problems: [] });
  });

  it("names an edited line (bad signature) and the broken link after it, and leaves the edited anchor out", () => {
    const lines = file(k, 3);
    lines[1] = lines[1].replace('"lastId":20', '"lastId":19');
    const v = verifyAnchorText("f", text(lines), k.publicKeyPem);
    expect(v.problems).to.deep.equal([
      "line 2 (anchor #2, backup_evidence row 19) was edited: its signature does not match its content",
      "line 3 (anchor #3, audit_log row 30) does not link to line 2: a line before it was edited, replaced or inserted",
    ]);
    expect(v.anchors.map((a) => a.seq)).to.deep.equal([1, 3]);
  });

  it("names deleted and reordered lines", () => {
    const lines = file(k, 5);
    expect(verifyAnchorText("f", text([lines[0], lines[3], lines[4]]), k.publicKeyPem).problems).to.deep.equal([
      "line 2 (anchor #4, backup_evidence row 40) follows anchor #1: anchors #2–#3 were deleted",
    ]);
    expect(verifyAnchorText("f", text([lines[1], lines[0]]), k.publicKeyPem).problems).to.deep.equal([
      "line 1 (anchor #2, backup_evidence row 20) follows anchor #0: anchor #1 was deleted",
      "line 2 (anchor #1, audit_log row 10) follows anchor #2: the lines are out of order",
    ]);
  });

  it("refuses a line signed by another key, a line that is not an anchor, and a line cut short", () => {
    const other = keys();
    const lines = file(k, 2);
    const foreign = file(other, 2);
    expect(verifyAnchorText("f", text([lines[0], foreign[1]]), k.publicKeyPem).problems[0]).to.equal(
      `line 2 (anchor #2, backup_evidence row 20) does not link to line 1: a line before it was edited, replaced or inserted`,
    );
    expect(verifyAnchorText("f", text([lines[0], foreign[1]]), k.publicKeyPem).problems[1]).to.equal(
      `line 2 (anchor #2, backup_evidence row 20) names key ${publicKeyFingerprint(other.publicKeyPem)}, not the appliance key ${publicKeyFingerprint(k.publicKeyPem)}`,
    );
    expect(verifyAnchorText("f", text([lines[0], "hello"]), k.publicKeyPem).problems).to.deep.equal(['line 2 is not an anchor: "hello"']);
    expect(verifyAnchorText("f", lines[0] + "\n" + lines[1].slice(0, 40), k.publicKeyPem).problems).to.deep.equal([
      `line 2 is not an anchor (it is cut short): ${JSON.stringify(lines[1].slice(0, 40))}`,
    ]);
    expect(verifyAnchorText("f", lines[0] + "\n" + lines[1], k.publicKeyPem).problems).to.deep.equal([
      "line 2 has no line end: the file was cut or appended to by hand",
    ]);
  });
});
