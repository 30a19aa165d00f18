import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync } from "node:fs";
import path from "node:path";
import semver from "semver";
import { connectDocker, dockerSocketPath } from "../../lib/docker/engine.ts";
import { PlumError } from "../../lib/errors.ts";
import { sha256OfFile } from "../../lib/file-hashes.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { APP_VERSION, expectedSchemaVersion, migrationNames, PRODUCT_MIGRATIONS_DIR } from "../../lib/version.ts";
import { SUITES } from "../../product/validation/suites.ts";
import type { ReleaseRef } from "../runtimes/runtime.ts";
import { withDeadline } from "../../lib/wait.ts";
import { IMAGE_MEMBER, parseManifest, type BundleManifest } from "./bundle-manifest.ts";
import { importBundle, type ImportImages } from "./bundle-importer.ts";
import { currentRelease } from "./current-release.ts";
import { releaseChangesIn } from "./release-changes.ts";
import {
  imageIdOf,
  loadReleaseImage,
  reachableDocker,
  readLoadedImage,
  releaseImageTag,
  removeLoadedImage,
  writeLoadedImage,
  type ImageRemoval,
  type ReleaseImageEngine,
} from "./release-images.ts";

export interface ReleaseInfo {
  version: string;
  manifest: BundleManifest;
  dir: string;
  /** When the bundle was imported; null for the installed release (it came with the appliance). */
  importedAt: Date | null;
  /** The release the agent was installed from (not in releasesDir, never pruned). */
  installed: boolean;
}

export interface ReleaseStoreOptions {
  releasesDir: string;
  keep: number;
  vendorPublicKey?: string;
  /** Free bytes on a folder's file system (tests pretend a full disk). */
  freeBytes?: (dir: string) => number;
  /**
   * Set when product instances run as containers (runtime.kind: docker): an import loads the release's image
   * into this engine, and `ref` names the image in its repository.
   */
  images?: ReleaseImageEngine;
  /** Told what pruning did to each pruned release's image (tags it left say why). */
  onImageRemoval?: (version: string, outcome: ImageRemoval) => void;
}

const ENGINE_HINT =
  "start the Docker engine (`systemctl start docker`, or `dockerd &` where systemd does not run), or point runtime.docker.socket at its socket, then try again";
const IMAGE_REMOVAL_TIMEOUT_MS = 60_000;

const LEFTOVER_AGE_MS = 3600_000;

function freeBytesOn(dir: string): number {
  const fs = statfsSync(dir);
  return fs.bavail * fs.bsize;
}

/** The installed tree's own changelog section; a page listing releases does not fail for want of one. */
function installedChanges() {
  try {
    return releaseChangesIn(APP_ROOT, APP_VERSION);
  } catch {
    return undefined;
  }
}

/** The manifest of the installed tree, as if it had come in a bundle: it has no artefacts of its own. */
function installedManifest(): BundleManifest {
  const changes = installedChanges();
  return {
    format: 1,
    name: "plum",
    version: APP_VERSION,
    schemaVersion: expectedSchemaVersion(PRODUCT_MIGRATIONS_DIR),
    minimumVersion: APP_VERSION,
    createdAt: statSync(path.join(APP_ROOT, "package.json")).mtime.toISOString(),
    artefacts: [],
    suites: Object.keys(SUITES),
    migrations: migrationNames(PRODUCT_MIGRATIONS_DIR),
    ...(changes && { changes }),
  };
}

/**
 * The releases this appliance can run: the installed one plus the bundles imported into releasesDir, one
 * folder per version (dot-folders are imports or removals in progress).
 */
export class ReleaseStore {
  constructor(private readonly opts: ReleaseStoreOptions) {}

  /** Whether imports load images (the runtime is docker). */
  get loadsImages(): boolean {
    return this.opts.images !== undefined;
  }

  /** Imported releases, newest version first. */
  private imported(): ReleaseInfo[] {
    if (!existsSync(this.opts.releasesDir)) return [];
    const releases: ReleaseInfo[] = [];
    for (const entry of readdirSync(this.opts.releasesDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || semver.valid(entry.name) !== entry.name || entry.name === APP_VERSION) continue;
      const dir = path.join(this.opts.releasesDir, entry.name);
      const manifestFile = path.join(dir, "manifest.json");
      if (!existsSync(manifestFile)) continue;
      const parsed = parseManifest(readFileSync(manifestFile));
      if ("problems" in parsed) continue;
      // manifest.sig is the last file written before the folder got its name.
      releases.push({ version: entry.name, manifest: parsed.manifest, dir, importedAt: statSync(path.join(dir, "manifest.sig")).mtime, installed: false });
    }
    return releases.sort((a, b) => semver.rcompare(a.version, b.version));
  }

  /** Every release, newest version first; the installed one is marked `installed`. */
  list(): ReleaseInfo[] {
    const installed: ReleaseInfo = { version: APP_VERSION, manifest: installedManifest(), dir: APP_ROOT, importedAt: null, installed: true };
    return [...this.imported(), installed].sort((a, b) => semver.rcompare(a.version, b.version));
  }

  has(version: string): boolean {
    return version === APP_VERSION || this.imported().some((r) => r.version === version);
  }

  /** How to run a release's plumctl; throws when it is neither installed nor imported. */
  ref(version: string): ReleaseRef {
    if (version === APP_VERSION) return currentRelease();
    const release = this.find(version);
    return {
      version,
      dir: release.dir,
      command: [process.execPath, path.join(release.dir, "bin", "plumctl.js")],
      ...(release.manifest.image && { image: releaseImageTag(version, this.opts.images) }),
    };
  }

  /**
   * The release's image in the engine, loaded from the image.tar kept in its folder when the engine lacks it
   * (a release imported while the runtime was `process`, or an engine emptied since); image.tar's sha256 is
   * checked against the stored manifest again first. Resolves with the tag; undefined for a release without an image.
   */
  async ensureImage(version: string): Promise<string | undefined> {
    if (version === APP_VERSION) return undefined;
    const release = this.find(version);
    const image = release.manifest.image;
    if (!image) return undefined;
    const engine = this.opts.images ?? {};
    const { docker, socketPath } = await reachableDocker(engine.socketPath, ENGINE_HINT);
    const tag = releaseImageTag(version, engine);
    if ((await imageIdOf(docker, tag)) === image.id) return tag;
    const file = path.join(release.dir, IMAGE_MEMBER);
    const expected = release.manifest.artefacts.find((a) => a.name === IMAGE_MEMBER);
    const actual = existsSync(file) ? await sha256OfFile(file) : "absent";
    if (!expected || actual !== expected.sha256) {
      throw new PlumError(`the ${IMAGE_MEMBER} kept for ${version} does not match its signed manifest (sha256 ${actual})`, {
        hint: `the release folder was changed after import: remove ${release.dir} and import the bundle again`,
      });
    }
    const loaded = await loadReleaseImage(docker, socketPath, file, image, version, engine);
    const earlier = readLoadedImage(release.dir);
    const tags = [...new Set([...(earlier?.socketPath === socketPath && earlier.id === image.id ? earlier.tags : []), ...loaded.tags])];
    writeLoadedImage(release.dir, { ...loaded, tags });
    return tag;
  }

  manifest(version: string): BundleManifest {
    return version === APP_VERSION ? installedManifest() : this.find(version).manifest;
  }

  /** Verify and unpack a bundle (see importBundle); throws BundleRejected naming the check that failed. */
  import(file: string, opts: { currentVersion: string }): Promise<BundleManifest> {
    const engine = this.opts.images;
    return importBundle(file, {
      releasesDir: this.opts.releasesDir,
      vendorPublicKey: this.opts.vendorPublicKey,
      currentVersion: opts.currentVersion,
      isPresent: (v) => this.has(v),
      freeBytes: this.opts.freeBytes ?? freeBytesOn,
      ...(engine && { images: importImages(engine) }),
    });
  }

  /**
   * Where the console stages an uploaded bundle: a dot-folder of releasesDir (on the releases' own file system,
   * so its free space is the import's), with that file system's free bytes.
   */
  get uploadStaging(): { dir: string; freeBytes(dir: string): number } {
    return { dir: path.join(this.opts.releasesDir, ".upload"), freeBytes: this.opts.freeBytes ?? freeBytesOn };
  }

  /**
   * Remove imported releases beyond the newest `keep`, sparing `protect` (running, staged, rollback target),
   * and the images this appliance loaded for them (only those: see removeLoadedImage). Returns the versions removed.
   */
  async prune(protect: string[]): Promise<string[]> {
    this.sweepLeftovers();
    const removed: string[] = [];
    for (const [index, release] of this.imported().entries()) {
      if (index < this.opts.keep || protect.includes(release.version)) continue;
      const loaded = readLoadedImage(release.dir);
      // Renamed first: a removal cut short leaves a dot-folder, never a half release under its version.
      const doomed = path.join(this.opts.releasesDir, `.removing-${release.version}-${randomBytes(4).toString("hex")}`);
      renameSync(release.dir, doomed);
      rmSync(doomed, { recursive: true, force: true });
      removed.push(release.version);
      if (loaded) {
        const outcome = await withDeadline(
          `the image of ${release.version} to be removed`,
          IMAGE_REMOVAL_TIMEOUT_MS,
          removeLoadedImage(connectDocker(loaded.socketPath), loaded),
        ).catch((err: unknown): ImageRemoval => ({ removed: [], kept: loaded.tags.map((tag) => ({ tag, why: (err as Error).message })) }));
        this.opts.onImageRemoval?.(release.version, outcome);
      }
    }
    return removed;
  }

  /** Dot-folders of imports or removals cut short (a crash, a kill); an hour old, they are nobody's work in progress. */
  private sweepLeftovers(): void {
    if (!existsSync(this.opts.releasesDir)) return;
    for (const name of readdirSync(this.opts.releasesDir)) {
      if (!/^\.(import|partial|removing)-/.test(name)) continue;
      const dir = path.join(this.opts.releasesDir, name);
      if (name.startsWith(".removing-") || Date.now() - statSync(dir).mtimeMs > LEFTOVER_AGE_MS) rmSync(dir, { recursive: true, force: true });
    }
  }

  private find(version: string): ReleaseInfo {
    const release = this.imported().find((r) => r.version === version);
    if (!release) {
      const known = this.list()
        .map((r) => r.version)
        .join(", ");
      throw new PlumError(`release ${version} is not on this appliance (it has ${known})`, {
        hint: `import its bundle first: \`plumctl release import plum-${version}.tar\``,
      });
    }
    return release;
  }
}

/** How an import of this store loads images: the engine asked first, the load undone when the import fails after it. */
function importImages(engine: ReleaseImageEngine): ImportImages {
  const socketPath = dockerSocketPath(engine.socketPath);
  return {
    async ready() {
      await reachableDocker(socketPath, ENGINE_HINT);
    },
    async load(file, manifest) {
      const docker = connectDocker(socketPath);
      const loaded = await loadReleaseImage(docker, socketPath, file, manifest.image!, manifest.version, engine);
      return {
        record: (releaseDir) => writeLoadedImage(releaseDir, loaded),
        undo: async () => void (await removeLoadedImage(docker, loaded)),
      };
    },
  };
}
