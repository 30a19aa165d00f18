import { expect } from "chai";
import { generateKeyPairSync } from "node:crypto";
import { verifyEvidenceBytes } from "../../backup/evidence/evidence-verifier.ts";
import { publicKeyFingerprint, signBytes, type SigningKeys } from "../../backup/evidence/evidence-signature.ts";
import { anchorLine } from "../../lib/chain-anchors.ts";
import { canonicalJson, GENESIS_HASH } from "../../lib/hash-chain.ts";

function keys(): SigningKeys {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    signingKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** A JSON export of no records whose chain section carries `checkpoint`, signed by `k` (the file's own key). */
function signedExport(k: SigningKeys, checkpoint: Record<string, unknown>, publicKey = k.publicKeyPem): Buffer {
  const report = {
    format: "plum-backup-evidence",
    appliance: { publicKeyFingerprint: publicKeyFingerprint(k.publicKeyPem) },
    controls: [],
    chain: { name: "backup_evidence", anchor: null, firstId: null, lastId: null, lastHash: null, count: 0, checkpoint },
    records: [],
  };
  return Buffer.from(JSON.stringify({ ...report, signature: { ...signBytes(canonicalJson(report), k), publicKey } }));
}

describe("evidence verify: the export's chain checkpoint", () => {
  const k = keys();
  const pin = { fingerprint: publicKeyFingerprint(k.publicKeyPem), source: "--fingerprint" };
  const { anchor } = anchorLine(
    { seq: 7, prev: GENESIS_HASH, chain: "backup_evidence", lastId: 0, lastHash: GENESIS_HASH, at: "2026-12-02T05:00:00.000Z", reason: "export" },
    k,
  );

  it("verifies a whole checkpoint signed by the pinned key", () => {
    const verdict = verifyEvidenceBytes("e.json", signedExport(k, { ...anchor }), undefined, { pin });
    expect(verdict.problems).to.deep.equal([]);
    expect(verdict.ok).to.equal(true);
  });

  it("reports a checkpoint field that is missing or of the wrong type, naming each, rather than comparing it as empty", () => {
    const { key: _key, ...withoutKey } = anchor;
    const verdict = verifyEvidenceBytes("e.json", signedExport(k, { ...withoutKey, lastId: "0", signature: "" }), undefined, { pin });
    expect(verdict.ok).to.equal(false);
    expect(verdict.problems).to.deep.equal([
      "its chain checkpoint (anchor #7) lacks lastId (an integer), key (a string), signature (a string): it cannot be checked, so the records it should cover are not anchored",
    ]);
  });

  it("says a checkpoint cannot be checked when no key is pinned and the file's own key is not a valid one", () => {
    const verdict = verifyEvidenceBytes("e.json", signedExport(k, { ...anchor }, "not a key"), undefined, {});
    expect(verdict.ok).to.equal(false);
    expect(verdict.problems).to.deep.equal([
      "its public key is not a valid ed25519 public key (PEM)",
      "its chain checkpoint (anchor #7) cannot be checked against a key: none is pinned and the file's own public key is not a valid ed25519 key",
      "its chain checkpoint (anchor #7) is not signed by the key that signed the file",
    ]);
  });
});
