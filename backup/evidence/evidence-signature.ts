import { createHash, sign, verify } from "node:crypto";
import { publicKeyFingerprint } from "../../lib/key-fingerprint.ts";

/** ed25519 signatures by the appliance key: embedded in JSON exports, detached (`FILE.sig`) for CSV and PDF. */
export interface EmbeddedSignature {
  algorithm: "ed25519";
  publicKey: string;
  value: string; // base64
}

export interface DetachedSignature extends EmbeddedSignature {
  format: "plum-detached-signature";
  file: string;
  sha256: string;
  publicKeyFingerprint: string;
}

export interface SigningKeys {
  signingKeyPem: string;
  publicKeyPem: string;
}

/**
 * The fingerprint of an evidence signing key, the one an auditor keeps and pins: "SHA256:" and the unpadded
 * base64 of the sha256 of the key's DER (SubjectPublicKeyInfo), in the form ssh-keygen prints. Without the
 * appliance: `openssl pkey -pubin -in KEY.pub.pem -outform DER | openssl dgst -sha256 -binary | base64`.
 * Every export's `publicKeyFingerprint` field, the recovery kit, the console and `plumctl evidence` use it.
 */
export { publicKeyFingerprint };

export function signBytes(bytes: Buffer | string, keys: SigningKeys): EmbeddedSignature {
  return { algorithm: "ed25519", publicKey: keys.publicKeyPem, value: sign(null, Buffer.from(bytes), keys.signingKeyPem).toString("base64") };
}

/** Whether `signature` is a valid ed25519 signature of `bytes`; false (never a throw) on a malformed key or value. */
export function signatureMatches(bytes: Buffer | string, signature: Pick<EmbeddedSignature, "publicKey" | "value">): boolean {
  try {
    return verify(null, Buffer.from(bytes), signature.publicKey, Buffer.from(signature.value, "base64"));
  } catch {
    return false;
  }
}

export function sha256Hex(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The content of `FILE.sig`: JSON naming the file, its sha256 and the signature of its bytes. */
export function detachedSignature(fileName: string, bytes: Buffer, keys: SigningKeys): Buffer {
  const sig: DetachedSignature = {
    format: "plum-detached-signature",
    file: fileName,
    sha256: sha256Hex(bytes),
    publicKeyFingerprint: publicKeyFingerprint(keys.publicKeyPem),
    ...signBytes(bytes, keys),
  };
  return Buffer.from(JSON.stringify(sig, null, 2) + "\n");
}
