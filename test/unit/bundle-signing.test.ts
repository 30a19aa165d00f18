import { expect } from "chai";
import { createPublicKey } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateDevSigningKey, loadVendorSigningKey, parseVendorPublicKey, sign, verifySignature } from "../../appliance/releases/bundle-signing.ts";
import { PlumError } from "../../lib/errors.ts";

describe("bundle signing (ed25519)", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(path.join(tmpdir(), "plum-signing-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("signs with a generated key and verifies with its public key as PEM or as raw base64", () => {
    const keyFile = path.join(dir, "vendor.key");
    const pem = generateDevSigningKey(keyFile);
    const key = loadVendorSigningKey(keyFile);
    const raw = createPublicKey(pem).export({ type: "spki", format: "der" }).subarray(-32).toString("base64");
    const bytes = Buffer.from('{"version":"1.2.3"}\n');
    const sig = sign(bytes, key);
    expect(verifySignature(bytes, sig, parseVendorPublicKey(pem))).to.equal(true);
    expect(verifySignature(bytes, sig + "\n", parseVendorPublicKey(raw))).to.equal(true);
    expect(verifySignature(Buffer.from('{"version":"1.2.4"}\n'), sig, parseVendorPublicKey(raw))).to.equal(false);
    expect(verifySignature(bytes, "not base64!", parseVendorPublicKey(raw))).to.equal(false);
  });

  it("refuses a signing key other users can read, and will not overwrite one", () => {
    const keyFile = path.join(dir, "loose.key");
    generateDevSigningKey(keyFile);
    chmodSync(keyFile, 0o640);
    expect(() => loadVendorSigningKey(keyFile)).to.throw(PlumError, `the vendor signing key ${keyFile} has mode 640: other users may read it`);
    expect(() => generateDevSigningKey(keyFile)).to.throw(/EEXIST/);
  });

  it("refuses a configured public key that is neither PEM nor 32 bytes of base64", () => {
    expect(() => parseVendorPublicKey("c2hvcnQ=")).to.throw(PlumError, "the configured vendor public key is not usable: base64 of 5 bytes, not 32");
    expect(() => parseVendorPublicKey("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----")).to.throw(
      PlumError,
      /^the configured vendor public key is not usable/,
    );
  });
});
