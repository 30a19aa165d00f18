import semver from "semver";
import { z } from "zod";
import { migrationDataChangesSchema } from "../../lib/db/data-changes.ts";

const version = z.string().refine((v) => semver.valid(v) === v, "is not a semantic version (X.Y.Z)");
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "is not a sha256 in hex");
const migrationName = z.string().regex(/^\d+[\w.-]*$/, "is not a migration name");

/** At most this many characters of changelog ride in a manifest (which may be 1 MiB in all). */
export const CHANGES_MAX_CHARS = 64 * 1024;

/**
 * What a release changes, copied from its CHANGELOG.md by the builder. `section` names the section copied:
 * the release's own version, or "Unreleased" when the changelog had none for it yet.
 */
export const releaseChangesSchema = z.strictObject({
  section: z.union([version, z.literal("Unreleased")]),
  date: z.iso.date().optional(),
  // Printed to terminals and pages: plain text only, so an escape sequence cannot ride along.
  text: z
    .string()
    .max(CHANGES_MAX_CHARS)
    // eslint-disable-next-line no-control-regex -- the control characters are what the rule keeps out
    .regex(/^[^\x00-\x08\x0b-\x1f\x7f]*$/, "holds control characters (only text, tabs and line feeds)"),
});

export type ReleaseChanges = z.infer<typeof releaseChangesSchema>;

/**
 * What `manifest.json` in a release bundle says. Its exact bytes in the tar are what `manifest.sig` signs, so
 * nothing re-serialises a manifest before verifying it.
 */
export const bundleManifestSchema = z.strictObject({
  format: z.literal(1),
  name: z.literal("plum"),
  version,
  /** The newest product migration: what `pgmigrations` holds once this release has migrated. */
  schemaVersion: z.string().min(1),
  /** The oldest installed version this release upgrades from. */
  minimumVersion: version,
  createdAt: z.iso.datetime(),
  artefacts: z.array(z.strictObject({ name: z.enum(["app.tgz"]), sha256, bytes: z.number().int().nonnegative() })).min(1),
  /** Validation suites the upgrade runs against staging. */
  suites: z.array(z.string().regex(/^[a-z][a-z0-9-]*$/)),
  /** Product migrations, oldest first. */
  migrations: z.array(migrationName),
  /** Optional: bundles built before the changelog existed carry none and still import. */
  changes: releaseChangesSchema.optional(),
  /**
   * What each product migration changes in the data, by migration name (derived by the builder, the rest stated
   * by the migration): the upgrade's data-diff gate refuses any difference on staging that none covers. Optional:
   * bundles built before it carry none and still import; the gate then shows what it measured and holds the
   * promotion for an admin's approval.
   */
  dataChanges: z.record(migrationName, migrationDataChangesSchema).optional(),
});

export type BundleManifest = z.infer<typeof bundleManifestSchema>;

/** The bundle's members, in the order they are written: nothing else may be in the outer tar. */
export const BUNDLE_MEMBERS = ["manifest.json", "manifest.sig", "app.tgz"] as const;

/** The bytes written as manifest.json (and signed). */
export function manifestBytes(manifest: BundleManifest): Buffer {
  return Buffer.from(JSON.stringify(manifest, null, 2) + "\n", "utf8");
}

/** Parse manifest.json bytes; the problems are listed for the error message. */
export function parseManifest(bytes: Buffer): { manifest: BundleManifest } | { problems: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    return { problems: [`not JSON: ${(err as Error).message}`] };
  }
  const result = bundleManifestSchema.safeParse(raw);
  if (result.success) return { manifest: result.data };
  return { problems: result.error.issues.map((i) => `${i.path.join(".") || "(top level)"}: ${i.message}`) };
}

export function bundleFileName(version: string): string {
  return `plum-${version}.tar`;
}
