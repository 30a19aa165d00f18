import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as signWith, verify, type KeyObject } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { PlumError } from "../../lib/errors.ts";

// The DER prefix of an ed25519 SubjectPublicKeyInfo: with the raw 32 bytes appended it is a complete key.
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** The vendor's signing key (PEM PKCS#8). A key others can read is refused: it would sign anyone's release. */
export function loadVendorSigningKey(file: string): KeyObject {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch (err) {
    throw new PlumError(`the vendor signing key ${file} cannot be read: ${(err as Error).message}`, {
      hint: "give the PEM (PKCS#8) ed25519 private key with --key FILE or PLUM_VENDOR_SIGNING_KEY_FILE",
    });
  }
  if ((mode & 0o077) !== 0) {
    throw new PlumError(`the vendor signing key ${file} has mode ${mode.toString(8)}: other users may read it`, {
      hint: `restrict it with \`chmod 600 ${file}\``,
    });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch (err) {
    throw new PlumError(`the vendor signing key ${file} is not a PEM private key: ${(err as Error).message}`, {
      hint: "expected an ed25519 key in PKCS#8 PEM, as `npm run bundle` writes one into .bundle-keys/",
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new PlumError(`the vendor signing key ${file} is a ${key.asymmetricKeyType} key, not ed25519`, {
      hint: "generate one with `openssl genpkey -algorithm ed25519`",
    });
  }
  return key;
}

/** A fresh development signing key at `file` (mode 0600, refuses to overwrite); returns its public key PEM. */
export function generateDevSigningKey(file: string): string {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  writeFileSync(file, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
  return publicKeyPem(publicKey);
}

export function publicKeyPem(key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return pub.export({ type: "spki", format: "pem" }).toString();
}

/** The base64 ed25519 signature of `bytes` (what manifest.sig holds). */
export function sign(bytes: Buffer, key: KeyObject): string {
  return signWith(null, bytes, key).toString("base64");
}

/** releases.vendorPublicKey as configured: PEM, or the raw 32-byte key in base64 (as release notes print it). */
export function parseVendorPublicKey(configValue: string): KeyObject {
  const value = configValue.trim();
  const hint =
    "set releases.vendorPublicKey (or PLUM_VENDOR_PUBLIC_KEY) to the vendor's ed25519 public key: PEM (-----BEGIN PUBLIC KEY-----…) or the 32-byte key in base64";
  let key: KeyObject;
  try {
    if (value.startsWith("-----BEGIN")) {
      key = createPublicKey(value);
    } else {
      const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(value) ? Buffer.from(value, "base64") : Buffer.alloc(0);
      if (raw.length !== 32) throw new Error(`base64 of ${raw.length} bytes, not 32`);
      key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
    }
  } catch (err) {
    throw new PlumError(`the configured vendor public key is not usable: ${(err as Error).message}`, { hint });
  }
  if (key.asymmetricKeyType !== "ed25519") throw new PlumError(`the configured vendor public key is a ${key.asymmetricKeyType} key, not ed25519`, { hint });
  return key;
}

/** Whether `sigBase64` is the ed25519 signature of `bytes` by `publicKey`; false (never a throw) when malformed. */
export function verifySignature(bytes: Buffer, sigBase64: string, publicKey: KeyObject): boolean {
  const sig = sigBase64.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sig)) return false;
  try {
    return verify(null, bytes, publicKey, Buffer.from(sig, "base64"));
  } catch {
    return false;
  }
}
