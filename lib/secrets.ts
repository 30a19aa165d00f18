import { randomBytes, generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { PlumError } from "./errors.ts";

/** The appliance's secrets: each in its own file under PLUM_HOME/secrets, mode 0600, created once. */
export interface Secrets {
  sessionKey: Buffer;
  postgresPassword: string;
  resticPassword: string;
  signingPrivateKeyPem: string;
  signingPublicKeyPem: string;
  /** Bearer token of the agent's control API (plumctl on this host reads it from the 0600 file). */
  controlToken: string;
}

const FILES = {
  sessionKey: "session-key",
  postgresPassword: "postgres-password",
  resticPassword: "restic-password",
  signingPrivateKey: "appliance-signing-key.pem",
  signingPublicKey: "appliance-signing-key.pub.pem",
  controlToken: "control-token",
} as const;

/** The appliance's public signing key (PEM): the key evidence exports and their `.sig` files are checked against. */
export function signingPublicKeyFile(secretsDir: string): string {
  return path.join(secretsDir, FILES.signingPublicKey);
}

function writeSecret(file: string, content: string): void {
  // "wx": never overwrite a secret that appeared meanwhile; mode applies at creation.
  writeFileSync(file, content, { mode: 0o600, flag: "wx" });
}

function readSecret(file: string): string {
  const mode = statSync(file).mode & 0o777;
  if (mode !== 0o600) chmodSync(file, 0o600);
  return readFileSync(file, "utf8").trim();
}

/**
 * The control API's token alone, for plumctl beside a running agent: it reads no other secret and creates
 * nothing (the agent made the token at its start; a token missing means another PLUM_HOME or no access).
 */
export function readControlToken(secretsDir: string): string {
  const file = path.join(secretsDir, FILES.controlToken);
  try {
    return readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new PlumError(`the agent's control token cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ${file}`, {
      hint: "run plumctl as the agent's user (root), with the same PLUM_HOME as the agent",
    });
  }
}

/** Create whatever secret is missing (never replace one), tighten modes, and read them all. */
export function ensureSecrets(secretsDir: string): Secrets {
  mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  chmodSync(secretsDir, 0o700);
  const file = (name: string) => path.join(secretsDir, name);
  if (!existsSync(file(FILES.sessionKey))) writeSecret(file(FILES.sessionKey), randomBytes(32).toString("hex") + "\n");
  if (!existsSync(file(FILES.postgresPassword))) writeSecret(file(FILES.postgresPassword), randomBytes(24).toString("base64url") + "\n");
  if (!existsSync(file(FILES.resticPassword))) writeSecret(file(FILES.resticPassword), randomBytes(32).toString("base64url") + "\n");
  if (!existsSync(file(FILES.controlToken))) writeSecret(file(FILES.controlToken), randomBytes(32).toString("base64url") + "\n");
  if (!existsSync(file(FILES.signingPrivateKey))) {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    writeSecret(file(FILES.signingPrivateKey), privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    writeSecret(file(FILES.signingPublicKey), publicKey.export({ type: "spki", format: "pem" }).toString());
  }
  return {
    sessionKey: Buffer.from(readSecret(file(FILES.sessionKey)), "hex"),
    postgresPassword: readSecret(file(FILES.postgresPassword)),
    resticPassword: readSecret(file(FILES.resticPassword)),
    signingPrivateKeyPem: readSecret(file(FILES.signingPrivateKey)) + "\n",
    signingPublicKeyPem: readSecret(file(FILES.signingPublicKey)) + "\n",
    controlToken: readSecret(file(FILES.controlToken)),
  };
}

/**
 * The password of a PostgreSQL role the agent creates (the product's login, the migrations' owner): a random
 * secret in its own 0600 file, made once per role name. The role gets only its SCRAM verifier (product-roles.ts).
 */
export function ensureRolePassword(secretsDir: string, role: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(role))
    throw new PlumError(`"${role}" is not a role name the appliance makes`, { hint: "use lower-case letters, digits and _" });
  mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  const file = path.join(secretsDir, `postgres-role-${role}-password`);
  if (!existsSync(file)) {
    try {
      writeSecret(file, randomBytes(24).toString("base64url") + "\n");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err; // another start made it meanwhile
    }
  }
  return readSecret(file);
}
