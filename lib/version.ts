import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { APP_ROOT, CODE_ROOT } from "./paths.ts";

/** This build's version, from package.json. */
export const APP_VERSION: string = JSON.parse(readFileSync(path.join(APP_ROOT, "package.json"), "utf8")).version;

export const PRODUCT_MIGRATIONS_DIR = path.join(CODE_ROOT, "migrations");
export const OPS_MIGRATIONS_DIR = path.join(CODE_ROOT, "migrations", "ops");

/** The product (or ops) migrations in `dir`, oldest first, as node-pg-migrate names them. */
export function migrationNames(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && /^\d+.*\.(ts|js)$/.test(e.name) && !e.name.endsWith(".d.ts"))
    .map((e) => e.name.replace(/\.(ts|js)$/, ""))
    .sort();
}

/** The schema version a build expects: the name of its newest migration (what node-pg-migrate records). */
export function expectedSchemaVersion(dir: string): string {
  const names = migrationNames(dir);
  return names.length > 0 ? names[names.length - 1] : "none";
}
