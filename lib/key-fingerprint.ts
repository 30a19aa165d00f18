import { createHash, createPublicKey } from "node:crypto";

/**
 * The fingerprint of a public key as the appliance prints it everywhere (evidence, anchors, the recovery kit,
 * the console): "SHA256:" + unpadded base64 of sha256 over the key's DER (SPKI), what
 * `openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64` gives.
 */
export function publicKeyFingerprint(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: "spki", format: "der" });
  return "SHA256:" + createHash("sha256").update(der).digest("base64").replace(/=+$/, "");
}
