import { randomBytes } from "node:crypto";
import argon2 from "argon2";
import { BadRequestError } from "../http-errors.ts";

// OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane.
const OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, OPTIONS);
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

let dummyHash: Promise<string> | undefined;
/** Spend the same time for unknown users as for known ones, so sign-in timing does not reveal usernames. */
export async function burnVerify(password: string): Promise<void> {
  dummyHash ??= hashPassword(randomBytes(16).toString("hex"));
  await verifyPassword(await dummyHash, password);
}

const ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"; // no 0/o, 1/l/i: read aloud or typed from a terminal
/** A one-time password: 4 groups of 5, ~99 bits. */
export function oneTimePassword(): string {
  const bytes = randomBytes(20);
  const chars = [...bytes].map((b) => ALPHABET[b % ALPHABET.length]);
  return [0, 5, 10, 15].map((i) => chars.slice(i, i + 5).join("")).join("-");
}

export const MIN_PASSWORD_LENGTH = 12;

/** The rules a new password must meet; throws 400 listing what is wrong. */
export function checkNewPassword(username: string, next: string, confirm: string): void {
  const fields: Record<string, string> = {};
  if (next.length < MIN_PASSWORD_LENGTH) fields.newPassword = `must be at least ${MIN_PASSWORD_LENGTH} characters`;
  else if (next.length > 256) fields.newPassword = "must be at most 256 characters";
  else if (next.toLowerCase().includes(username.toLowerCase())) fields.newPassword = "must not contain your username";
  if (next !== confirm) fields.confirmPassword = "does not match the new password";
  if (Object.keys(fields).length > 0) throw new BadRequestError("The new password was not accepted.", fields);
}
