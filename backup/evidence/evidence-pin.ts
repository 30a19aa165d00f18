import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { PlumError } from "../../lib/errors.ts";
import { signingPublicKeyFile } from "../../lib/secrets.ts";
import { publicKeyFingerprint } from "./evidence-signature.ts";

/**
 * The key an export must have been signed by, by its fingerprint, and where the pin came from (to say which
 * key a verdict was checked against). A key embedded in the file is never a pin: anyone can make one.
 */
export interface EvidencePin {
  fingerprint: string;
  source: string;
}

/** What `publicKeyFingerprint` prints: "SHA256:" and the unpadded base64 of 32 bytes. */
const FINGERPRINT = /^SHA256:([A-Za-z0-9+/]{43})=?$/i;

/** The one sentence that goes with the fingerprint wherever the appliance shows it. */
export function fingerprintAdvice(fingerprint: string): string {
  return `Keep this fingerprint where the appliance cannot change it (with the recovery kit, in the audit file): check any evidence export with \`plumctl evidence verify FILE --fingerprint ${fingerprint}\`.`;
}

/** A fingerprint as an auditor types or pastes it, in the one form exports and the appliance print. */
export function parseFingerprint(text: string): string {
  const m = FINGERPRINT.exec(text.trim());
  if (!m)
    throw new PlumError(`"${text}" is not an evidence key fingerprint`, {
      hint: "give it as the recovery kit, the console's Evidence page and `plumctl evidence fingerprint` print it: SHA256: followed by 43 characters of base64",
    });
  return `SHA256:${m[1]}`;
}

function rawEd25519(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
}

/**
 * The public key in a key file, as PEM: PEM or DER (SubjectPublicKeyInfo), or the raw 32 bytes of an ed25519
 * key, as bytes or as one line of hex or base64. A private key is refused: an auditor never needs one.
 */
export function publicKeyPemFrom(bytes: Buffer, name: string): string {
  const text = bytes.toString("utf8").trim();
  if (/PRIVATE KEY/.test(text))
    throw new PlumError(`${name} holds a private key`, {
      hint: "pass the appliance's public key (appliance-signing-key.pub.pem), or its fingerprint with --fingerprint: a private key must never leave the appliance",
    });
  let key: KeyObject;
  try {
    if (text.startsWith("-----BEGIN")) key = createPublicKey(text);
    else if (bytes.length === 32) key = rawEd25519(bytes);
    else if (/^[0-9a-f]{64}$/i.test(text)) key = rawEd25519(Buffer.from(text, "hex"));
    else if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) key = rawEd25519(Buffer.from(text, "base64"));
    else key = createPublicKey({ key: bytes, format: "der", type: "spki" });
  } catch (err) {
    throw new PlumError(`${name} is not a public key (${(err as Error).message})`, {
      hint: "pass the appliance's appliance-signing-key.pub.pem (PEM), the key as DER, or its raw 32 bytes (as bytes, hex or base64)",
    });
  }
  if (key.asymmetricKeyType !== "ed25519")
    throw new PlumError(`${name} holds an ${key.asymmetricKeyType ?? "unknown"} key, not an ed25519 key`, {
      hint: "evidence is signed with the appliance's ed25519 key: pass its appliance-signing-key.pub.pem",
    });
  return key.export({ type: "spki", format: "pem" }).toString();
}

/** A pin from a key file: its fingerprint, named by the file. */
export function pinFromKeyFile(file: string): EvidencePin {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new PlumError(`the key file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, {
      hint: "give the path of the appliance's public key file (appliance-signing-key.pub.pem)",
    });
  }
  return { fingerprint: publicKeyFingerprint(publicKeyPemFrom(bytes, file)), source: `the key in ${file}` };
}

/**
 * The appliance's own public key under PLUM_HOME, when this runs on the appliance: `pin` when it is there,
 * `unreadable` (why) when it is there but this user may not read it, nothing when there is none.
 */
export function appliancePin(secretsDir: string): { pin?: EvidencePin; unreadable?: string } {
  const file = signingPublicKeyFile(secretsDir);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? {} : { unreadable: `this appliance's key ${file} cannot be read (${code ?? (err as Error).message})` };
  }
  return { pin: { fingerprint: publicKeyFingerprint(publicKeyPemFrom(bytes, file)), source: `this appliance's own key, ${file}` } };
}
