import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import { connectDocker, dockerSocketPath, engineFacts } from "../../lib/docker/engine.ts";
import { PlumError } from "../../lib/errors.ts";
import type { ReleaseImage } from "./bundle-manifest.ts";
import { buildImage, loadImage, PRODUCT_IMAGE_REPOSITORY, productImageTag, saveImage } from "./container-image.ts";

/**
 * A release's container image on both sides: the builder makes image.tar from the tree app.tgz holds and
 * leaves the build engine as it found it; the appliance loads it (after image.tar's sha256 was checked),
 * checks the engine's id against the signed manifest, and removes only what it loaded itself when the
 * release is pruned.
 */

/** Written into a release's folder when this appliance loaded (or tagged) its image: what pruning may remove. */
export const LOADED_IMAGE_FILE = "image-loaded.json";

/** The labels a release image carries: who it is, never a secret (anyone who can list images reads them). */
export function releaseImageLabels(facts: { version: string; schemaVersion: string }): Record<string, string> {
  return {
    "io.plum.image": "product",
    "io.plum.version": facts.version,
    "io.plum.schema-version": facts.schemaVersion,
    "org.opencontainers.image.title": "plum",
    "org.opencontainers.image.version": facts.version,
  };
}

/** `repository:tag` split at the last colon (a tag never holds one; a registry port would be before a slash). */
export function splitTag(ref: string): { repo: string; tag: string } {
  const at = ref.lastIndexOf(":");
  if (at <= 0 || ref.slice(at).includes("/")) throw new PlumError(`${ref} is not repository:tag`);
  return { repo: ref.slice(0, at), tag: ref.slice(at + 1) };
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** The id the engine gives `ref` (a tag or an id), undefined when it has no such image. */
export async function imageIdOf(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(ref).inspect()).Id;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** The engine at `socketPath` (or DOCKER_HOST, or the default socket), checked to answer, with `hint` for when it does not. */
export async function reachableDocker(socketPath: string | undefined, hint: string): Promise<{ docker: Docker; socketPath: string }> {
  const socket = dockerSocketPath(socketPath);
  const docker = connectDocker(socket);
  try {
    await engineFacts(docker, socket);
  } catch (err) {
    throw new PlumError((err as Error).message, { hint, cause: err });
  }
  return { docker, socketPath: socket };
}

export interface BuiltReleaseImage {
  tag: string;
  id: string;
  labels: Record<string, string>;
}

/**
 * Build `productImageTag(version)` from `appDir` and `docker save` it to `file`. The build engine is left as it
 * was: the image built is removed, and a tag the engine already had (an appliance on this host imported that
 * version) is given back to its image.
 */
export async function buildReleaseImage(
  docker: Docker,
  opts: { appDir: string; version: string; schemaVersion: string; file: string; workDir: string; timeoutMs?: number },
): Promise<BuiltReleaseImage> {
  const tag = productImageTag(opts.version);
  const labels = releaseImageLabels(opts);
  const before = await imageIdOf(docker, tag);
  const id = await buildImage(docker, { tag, appDir: opts.appDir, labels, timeoutMs: opts.timeoutMs }, opts.workDir);
  try {
    await saveImage(docker, tag, opts.file, opts.timeoutMs);
  } finally {
    if (before && before !== id) await docker.getImage(before).tag(splitTag(tag));
    if (before !== id) await docker.getImage(id).remove();
  }
  return { tag, id, labels };
}

/** What this appliance loaded into which engine for a release: the tags it made, which pruning takes away again. */
export interface LoadedImage {
  socketPath: string;
  id: string;
  /** Tags that were absent (or named another image) before the load and now name `id`. */
  tags: string[];
  loadedAt: string;
}

export interface ReleaseImageEngine {
  /** Where the engine listens (undefined: DOCKER_HOST, else the default socket). */
  socketPath?: string;
  /** runtime.docker.imageRepository: the repository the release's image is tagged in (default plum-product). */
  repository?: string;
}

/** The tag a release's image runs as on this appliance. */
export function releaseImageTag(version: string, engine?: ReleaseImageEngine): string {
  return productImageTag(version, engine?.repository ?? PRODUCT_IMAGE_REPOSITORY);
}

/**
 * `docker load` of a verified image.tar, then the engine's id of its tag checked against the signed
 * manifest's, and the tag in `engine.repository` added when that is not the bundle's. A mismatch undoes
 * the load and throws. Only call it on a file whose sha256 matched the manifest.
 */
export async function loadReleaseImage(
  docker: Docker,
  socketPath: string,
  file: string,
  image: ReleaseImage,
  version: string,
  engine: ReleaseImageEngine = {},
): Promise<LoadedImage> {
  const wanted = [...new Set([image.tag, releaseImageTag(version, engine)])];
  const before = new Map<string, string | undefined>();
  for (const tag of wanted) before.set(tag, await imageIdOf(docker, tag));
  const made = wanted.filter((t) => before.get(t) !== image.id);
  const undo = async () => {
    for (const tag of made) {
      const prior = before.get(tag);
      if (prior)
        await docker
          .getImage(prior)
          .tag(splitTag(tag))
          .catch(() => undefined);
      else if ((await imageIdOf(docker, tag).catch(() => undefined)) !== undefined)
        await docker
          .getImage(tag)
          .remove()
          .catch(() => undefined);
    }
  };
  if (before.get(image.tag) !== image.id) {
    const tags = await loadImage(docker, file);
    const id = await imageIdOf(docker, image.tag);
    if (!tags.includes(image.tag) || id !== image.id) {
      await undo();
      if (id && id !== before.get(image.tag))
        await docker
          .getImage(id)
          .remove()
          .catch(() => undefined);
      throw new PlumError(
        `image.tar loaded as ${tags.join(", ") || "no tag"} (${image.tag} is ${id ?? "absent"}); the signed manifest names ${image.tag} ${image.id}`,
        { hint: "the bundle's image does not match its manifest: ask the vendor for the bundle again" },
      );
    }
  }
  for (const tag of wanted.filter((t) => t !== image.tag && before.get(t) !== image.id)) await docker.getImage(image.id).tag(splitTag(tag));
  return { socketPath, id: image.id, tags: made, loadedAt: new Date().toISOString() };
}

export function writeLoadedImage(releaseDir: string, loaded: LoadedImage): void {
  writeFileSync(path.join(releaseDir, LOADED_IMAGE_FILE), JSON.stringify(loaded, null, 2) + "\n", { mode: 0o644 });
}

/** The record of what this appliance loaded for a release, if it loaded anything. */
export function readLoadedImage(releaseDir: string): LoadedImage | undefined {
  const file = path.join(releaseDir, LOADED_IMAGE_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as LoadedImage;
    return typeof parsed.id === "string" && Array.isArray(parsed.tags) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export interface ImageRemoval {
  removed: string[];
  /** Tags left, with why: they name another image now, or a container still uses it, or the engine did not answer. */
  kept: { tag: string; why: string }[];
}

/**
 * Take away the tags this appliance made for a release's image, each only while it still names the image it
 * loaded (another load may have taken the tag since); the image goes with its last tag. Never forced: an image
 * a container still uses stays, and says so.
 */
export async function removeLoadedImage(docker: Docker, loaded: LoadedImage): Promise<ImageRemoval> {
  const outcome: ImageRemoval = { removed: [], kept: [] };
  for (const tag of loaded.tags) {
    try {
      const id = await imageIdOf(docker, tag);
      if (id === undefined) continue;
      if (id !== loaded.id) {
        outcome.kept.push({ tag, why: `it names ${id} now, not the ${loaded.id} this appliance loaded` });
        continue;
      }
      await docker.getImage(tag).remove();
      outcome.removed.push(tag);
    } catch (err) {
      outcome.kept.push({ tag, why: (err as Error).message });
    }
  }
  return outcome;
}
