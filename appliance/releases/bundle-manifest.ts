import semver from "semver";
import { z } from "zod";
import { migrationDataChangesSchema } from "../../lib/db/data-changes.ts";

const version = z.string().refine((v) => semver.valid(v) === v, "is not a semantic version (X.Y.Z)");
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "is not a sha256 in hex");
const migrationName = z.string().regex(/^\d+[\w.-]*$/, "is not a migration name");
const imageId = z.string().regex(/^sha256:[0-9a-f]{64}$/, "is not an image id (sha256:<64 hex>)");
// repository:tag as docker names them, lower case, no registry host.
const imageTag = z.string().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*:[\w][\w.-]{0,127}$/, "is not an image tag (repository:tag)");

/** The bundle member that holds the release's container image (`docker save` format), when built with images. */
export const IMAGE_MEMBER = "image.tar" as const;

/**
 * The bundle member that holds the Node runtime of a bundle that carries a new agent (node/bin/node), when built
 * with `--agent`: an agent upgrade installs it beside the release's app in /opt/plum/<version>.
 */
export const NODE_MEMBER = "node.tgz" as const;

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
/**
 * The release's container image, built from exactly the tree app.tgz holds: `tag` is what `docker load` of
 * image.tar names (`plum-product:<version>`), `id` what the engine must report once it is loaded. Its sha256 and
 * size are image.tar's entry in `artefacts`, checked like app.tgz's before anything is loaded.
 */
export const releaseImageSchema = z.strictObject({
  file: z.literal(IMAGE_MEMBER),
  tag: imageTag,
  id: imageId,
  /** The labels the image carries (io.plum.version and the like; never secrets). */
  labels: z.record(z.string().regex(/^[a-z0-9.-]+$/), z.string().max(256)).optional(),
});

export type ReleaseImage = z.infer<typeof releaseImageSchema>;

/**
 * A bundle that carries a new agent (`npm run bundle -- --agent`): its app.tgz ships the embedded PostgreSQL
 * binaries too, and node.tgz the Node runtime it was built on. `plumctl upgrade start` of it replaces the agent.
 */
export const releaseAgentSchema = z.strictObject({
  file: z.literal(NODE_MEMBER),
  nodeVersion: z.string().regex(/^v\d+\.\d+\.\d+$/, "is not a Node version (vX.Y.Z)"),
});

export const bundleManifestSchema = z
  .strictObject({
    format: z.literal(1),
    name: z.literal("plum"),
    version,
    /** The newest product migration: what `pgmigrations` holds once this release has migrated. */
    schemaVersion: z.string().min(1),
    /** The oldest installed version this release upgrades from. */
    minimumVersion: version,
    createdAt: z.iso.datetime(),
    artefacts: z.array(z.strictObject({ name: z.enum(["app.tgz", NODE_MEMBER, IMAGE_MEMBER]), sha256, bytes: z.number().int().nonnegative() })).min(1),
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
    /**
     * The container image shipped as image.tar (`npm run bundle -- --images`). Optional: a bundle built without
     * images (every bundle before them) carries none, holds no image.tar, and imports as before.
     */
    image: releaseImageSchema.optional(),
    /** A new agent with its Node runtime (node.tgz). Optional: a bundle without one upgrades the product only. */
    agent: releaseAgentSchema.optional(),
  })
  .superRefine((m, ctx) => {
    const names = m.artefacts.map((a) => a.name);
    for (const name of new Set(names))
      if (names.filter((n) => n === name).length > 1) ctx.addIssue({ code: "custom", path: ["artefacts"], message: `lists ${name} more than once` });
    if (m.image && !names.includes(IMAGE_MEMBER)) ctx.addIssue({ code: "custom", path: ["artefacts"], message: `lists no ${IMAGE_MEMBER}, which image names` });
    if (!m.image && names.includes(IMAGE_MEMBER)) ctx.addIssue({ code: "custom", path: ["image"], message: `is missing, yet artefacts list ${IMAGE_MEMBER}` });
    if (m.agent && !names.includes(NODE_MEMBER)) ctx.addIssue({ code: "custom", path: ["artefacts"], message: `lists no ${NODE_MEMBER}, which agent names` });
    if (!m.agent && names.includes(NODE_MEMBER)) ctx.addIssue({ code: "custom", path: ["agent"], message: `is missing, yet artefacts list ${NODE_MEMBER}` });
  });

export type BundleManifest = z.infer<typeof bundleManifestSchema>;

/** The bundle's members, in the order they are written: nothing else may be in the outer tar (but image.tar, last, when built with images). */
export const BUNDLE_MEMBERS = ["manifest.json", "manifest.sig", "app.tgz"] as const;

/** The members of a bundle with or without its image (and its agent's Node runtime), in the order they are written. */
export function bundleMembers(withImage: boolean, withNode = false): string[] {
  return [...BUNDLE_MEMBERS, ...(withNode ? [NODE_MEMBER] : []), ...(withImage ? [IMAGE_MEMBER] : [])];
}

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
