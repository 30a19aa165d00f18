import { sha256OfFile } from "../../lib/file-hashes.ts";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { FINGERPRINT_FORMAT, type DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";
import { check, type CheckResult } from "../../product/validation/suite.ts";
import type { SetManifest } from "../backup-types.ts";

/**
 * Compares what a restore produced with the set's manifest: exact row counts per table, and every file's
 * sha256. One check per table and one for the files; a failing check names what differs.
 */
export function tableCountChecks(expected: Record<string, number>, restored: Record<string, number>): CheckResult[] {
  const checks = Object.entries(expected)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([table, rows]) => {
      const got = restored[table];
      if (got === undefined) return check(`rows in ${table}`, false, "the table is missing from the restored database");
      return check(`rows in ${table}`, got === rows, got === rows ? `${got}, as in the manifest` : `${got} restored, the manifest says ${rows}`);
    });
  const extra = Object.keys(restored).filter((t) => !(t in expected));
  if (extra.length > 0) checks.push(check("no table beyond the manifest", false, `not in the manifest: ${extra.sort().join(", ")}`));
  return checks;
}

/** Whether a set's manifest carries fingerprints this build can compare with (same format). */
export function comparableFingerprint(manifest: SetManifest): DatabaseFingerprint | undefined {
  const f = manifest.databases["db-plum"].fingerprint;
  return f?.format === FINGERPRINT_FORMAT ? f : undefined;
}

/** The note a restore of a set without comparable fingerprints carries (a passing check: nothing is wrong with it). */
export function noFingerprintCheck(manifest: SetManifest): CheckResult {
  const f = manifest.databases["db-plum"].fingerprint;
  return check(
    "content of the product tables",
    true,
    f
      ? `the manifest's fingerprints are of format ${f.format}, this build compares format ${FINGERPRINT_FORMAT}: row counts and file hashes verified only`
      : "the manifest has no fingerprints (a set made before they were recorded): row counts and file hashes verified only",
  );
}

/**
 * Compares the restored product tables' content with the manifest's fingerprints: one check per table, naming
 * the columns whose values differ, so a changed row whose table kept its row count is caught.
 */
export function contentChecks(expected: DatabaseFingerprint, restored: DatabaseFingerprint): CheckResult[] {
  return Object.entries(expected.tables)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([table, want]) => {
      const got = restored.tables[table];
      if (!got) return check(`content of ${table}`, false, "the table is missing from the restored database");
      if (got.hash === want.hash) return check(`content of ${table}`, true, "matches the manifest's fingerprint");
      const problems: string[] = [];
      const differing = Object.keys(want.columns).filter(
        (c) => got.columns[c] && (got.columns[c].hash !== want.columns[c].hash || got.columns[c].values !== want.columns[c].values),
      );
      const missing = Object.keys(want.columns).filter((c) => !got.columns[c]);
      const extra = Object.keys(got.columns).filter((c) => !want.columns[c]);
      if (differing.length > 0) problems.push(`values differ in ${differing.join(", ")}`);
      if (missing.length > 0) problems.push(`columns missing: ${missing.join(", ")}`);
      if (extra.length > 0) problems.push(`columns not in the manifest: ${extra.join(", ")}`);
      if (got.rows !== want.rows) problems.push(`${got.rows} rows restored, the manifest says ${want.rows}`);
      if (problems.length === 0) problems.push(got.unkeyed !== want.unkeyed ? "rows differ (the table has no primary key)" : "its fingerprint differs");
      return check(`content of ${table}`, false, problems.join("; "));
    });
}

/** Every regular file below `dir`, relative to it with "/" separators (as the manifest lists them). */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"));
}

export { sha256OfFile };

function listed(names: string[]): string {
  return names.length <= 10 ? names.join(", ") : `${names.slice(0, 10).join(", ")} and ${names.length - 10} more`;
}

export async function fileChecks(dir: string, expected: SetManifest["files"]): Promise<CheckResult[]> {
  const present = new Set(await filesBelow(dir));
  const missing: string[] = [];
  const differing: string[] = [];
  for (const file of expected) {
    if (!present.delete(file.path)) missing.push(file.path);
    else if ((await sha256OfFile(path.join(dir, ...file.path.split("/")))) !== file.sha256) differing.push(file.path);
  }
  const extra = [...present].sort();
  const problems = [
    missing.length > 0 ? `missing: ${listed(missing)}` : "",
    differing.length > 0 ? `sha256 differs: ${listed(differing)}` : "",
    extra.length > 0 ? `not in the manifest: ${listed(extra)}` : "",
  ].filter(Boolean);
  return [check("files and their sha256", problems.length === 0, problems.length === 0 ? `${expected.length} files match the manifest` : problems.join("; "))];
}

/** The failing checks, as one sentence for an error message. */
export function describeFailures(checks: CheckResult[]): string {
  return checks
    .filter((c) => !c.passed)
    .map((c) => `${c.name}: ${c.detail}`)
    .join("; ");
}
