import { randomBytes, type KeyObject } from "node:crypto";
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import semver from "semver";
import { childFailure, runChild, startChild } from "../../lib/child-process.ts";
import { ChildProcessError, PlumError } from "../../lib/errors.ts";
import { sha256OfFile } from "../../lib/file-hashes.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { expectedSchemaVersion, migrationNames } from "../../lib/version.ts";
import { SUITES } from "../../product/validation/suites.ts";
import { bundleFileName, bundleMembers, IMAGE_MEMBER, manifestBytes, NODE_MEMBER, type BundleManifest } from "./bundle-manifest.ts";
import { sign } from "./bundle-signing.ts";
import { releaseDataChanges } from "./migration-data-changes.ts";
import { productionModules } from "./production-modules.ts";
import { productImageTag } from "./container-image.ts";
import { buildReleaseImage, reachableDocker, releaseImageLabels } from "./release-images.ts";
import { releaseChangesIn } from "./release-changes.ts";

/** Folders tsc compiles (tsconfig.build.json); files in them that are not code are runtime assets. */
const CODE_FOLDERS = ["bin", "lib", "product", "backup", "appliance", "installer", "cli", "migrations"];
/** Code files: compiled by tsc (or not shipped), never copied into dist/ as runtime files. */
export const CODE_FILE = /\.(ts|js|mjs|cjs)$/;

// The same owner and order on every build, whoever builds it.
const TAR_NORMALISE = ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--hard-dereference"];

export interface BundleBuildOptions {
  version: string;
  outDir: string;
  signingKey: KeyObject;
  /** The tree to build from (tests build from a patched copy); its node_modules must be installed. */
  sourceDir?: string;
  /** Default: major.minor.0 of sourceDir's package.json version, i.e. upgrades from any patch of the current line. */
  minimumVersion?: string;
  /** Default: every suite in SUITES. */
  suites?: string[];
  /** gzip level of app.tgz: 6 (default) for what ships, 1 where only speed matters (tests). */
  compressionLevel?: number;
  /** A dist/ already compiled from sourceDir (by compileDist), reused instead of running tsc again. */
  compiledDist?: string;
  /**
   * Also build the release's container image from exactly what app.tgz holds and ship it as image.tar
   * (`docker save` format), its sha256, tag and id in the signed manifest. Needs a Docker engine.
   */
  images?: boolean;
  /** The engine's socket for `images` (default: DOCKER_HOST, else /var/run/docker.sock). */
  dockerSocket?: string;
  /**
   * Where a caller that builds one tree many times (tests) keeps images: given the build (which writes
   * image.tar to the file it is handed and resolves with the image id), it answers with an image.tar and its
   * id, built now or earlier for the same tree and version.
   */
  imageCache?: (build: (file: string) => Promise<string>) => Promise<{ file: string; id: string }>;
  /**
   * Carry a new agent (`--agent`): app.tgz ships the embedded PostgreSQL binaries as the install bundle's does,
   * node.tgz the Node runtime this build runs on, and the manifest says so (agent.nodeVersion).
   */
  agent?: boolean;
}

export interface BuiltBundle {
  file: string;
  manifest: BundleManifest;
  appBytes: number;
  /** image.tar's size, when built with images. */
  imageBytes?: number;
  /** Statements of the migrations the builder could not read for the data-change declaration, by migration. */
  unreadDataChanges: string[];
  timings: { compileMs: number; packMs: number; imageMs?: number; totalMs: number };
}

/** tsc run by this node on the release's own build config. */
export function tscArgs(tscJs: string, outDir: string): string[] {
  return [process.execPath, tscJs, "-p", "tsconfig.build.json", "--outDir", outDir];
}

/** What app.tgz holds, each from where it lives: the staged package.json, the compiled dist/, the sources' runtime files and modules. */
export function appTarArgs(from: { stage: string; distParent: string; sourceDir: string; modules: { include: string[]; exclude: string[] } }): string[] {
  return [
    "tar",
    "-c",
    "-f",
    "-",
    ...TAR_NORMALISE,
    "--anchored",
    ...from.modules.exclude.map((p) => `--exclude=${p}`),
    "-C",
    from.stage,
    "package.json",
    "-C",
    from.distParent,
    "dist",
    "-C",
    from.sourceDir,
    "package-lock.json",
    "bin/plumctl.js",
    "web",
    ...from.modules.include,
  ];
}

/** gzip at `level` without the name and time of the input, so two builds of one tree give the same bytes. */
export function gzipArgs(level: number): string[] {
  return ["gzip", `-${level}`, "-n"];
}

/** The outer bundle tar, its members in bundle order as listed (not sorted by name): image.tar last, when there is one. */
export function bundleTarArgs(file: string, bundleDir: string, withImage = false, withNode = false): string[] {
  return ["tar", "-c", "-f", file, ...TAR_NORMALISE.filter((o) => o !== "--sort=name"), "-C", bundleDir, ...bundleMembers(withImage, withNode)];
}

/** node.tgz: node/bin/node, the binary this build runs on (an official build needs only libc and libstdc++), laid out in `work`. */
function nodeRuntimeTarArgs(work: string): string[] {
  const tree = path.join(work, "node-runtime");
  mkdirSync(path.join(tree, "node", "bin"), { recursive: true });
  copyFileSync(process.execPath, path.join(tree, "node", "bin", "node"));
  return ["tar", "-c", "-f", "-", "--owner=0", "--group=0", "--numeric-owner", "-C", tree, "node"];
}

/** app.tgz unpacked as it is, modes included (not masked by the builder's umask): the tree the image carries. */
export function appUnpackArgs(app: string, dir: string): string[] {
  return ["tar", "-x", "-z", "-p", "-f", app, "-C", dir, "--no-same-owner"];
}

/**
 * `tar -c … | gzip -LEVEL > file`, both with argument arrays: tar's own --use-compress-program would hand
 * the level to /bin/sh, and gzip in a second process compresses while tar reads.
 */
export async function tarGzip(tarArgv: string[], file: string, opts: { level: number; timeoutMs: number }): Promise<void> {
  const tar = startChild(tarArgv, { stdout: "pipe", timeoutMs: opts.timeoutMs });
  const gzip = startChild(gzipArgs(opts.level), { stdin: tar.stdout!, stdout: createWriteStream(file, { mode: 0o644 }), timeoutMs: opts.timeoutMs });
  const [gzipped, tarred] = await Promise.allSettled([gzip.exit, tar.exit]);
  // gzip first: when it fails, tar dies of the broken pipe, which says nothing.
  for (const [what, settled] of [
    ["gzip (packing app.tgz)", gzipped],
    ["tar (packing app.tgz)", tarred],
  ] as const) {
    if (settled.status === "rejected") throw settled.reason;
    const exit = settled.value;
    if (exit.exitCode !== 0 || exit.timedOut) throw childFailure(exit, what, { timeoutMs: opts.timeoutMs });
    if (exit.outputError) throw exit.outputError;
  }
}

/**
 * Compile sourceDir with tsc (tsconfig.build.json) into `outDir` and copy the runtime assets beside the
 * compiled code, where `import.meta.dirname` looks for them.
 */
export async function compileDist(sourceDir: string, outDir: string, timeoutMs = 5 * 60_000): Promise<void> {
  // The builder's own TypeScript: an unpacked copy of the tree may only link node_modules.
  const argv = tscArgs(path.join(APP_ROOT, "node_modules", "typescript", "lib", "tsc.js"), outDir);
  try {
    await runChild(argv, { what: "tsc (compiling the release)", timeoutMs, cwd: sourceDir });
  } catch (err) {
    if (!(err instanceof ChildProcessError)) throw err;
    const first = err.outputTail.split("\n").find((l) => /error TS\d+/.test(l)) ?? "see the output below";
    throw new ChildProcessError(`tsc cannot compile ${sourceDir}: ${first}`, {
      command: argv,
      exitCode: err.exitCode,
      signal: err.signal,
      timedOut: err.timedOut,
      outputTail: err.outputTail,
      hint: "a release is built from a tree that type-checks: fix the errors and build again",
    });
  }
  for (const folder of CODE_FOLDERS) copyAssets(path.join(sourceDir, folder), path.join(outDir, folder));
}

function copyAssets(from: string, to: string): void {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    if (entry.isDirectory()) copyAssets(path.join(from, entry.name), path.join(to, entry.name));
    else if (entry.isFile() && !CODE_FILE.test(entry.name)) {
      mkdirSync(to, { recursive: true });
      copyFileSync(path.join(from, entry.name), path.join(to, entry.name));
    }
  }
}

function readPackageJson(sourceDir: string): Record<string, unknown> & { version: string } {
  return JSON.parse(readFileSync(path.join(sourceDir, "package.json"), "utf8"));
}

function checkVersions(version: string, minimumVersion: string): void {
  if (semver.valid(version) !== version) throw new PlumError(`--version ${version} is not a semantic version`, { hint: "e.g. --version 1.4.0" });
  if (semver.valid(minimumVersion) !== minimumVersion)
    throw new PlumError(`--minimum-version ${minimumVersion} is not a semantic version`, { hint: "e.g. --minimum-version 1.3.0" });
  if (semver.gt(minimumVersion, version))
    throw new PlumError(`the minimum version ${minimumVersion} is newer than the release ${version}`, {
      hint: "a release upgrades from versions older than itself",
    });
}

/**
 * Build and sign `plum-VERSION.tar`: manifest.json, manifest.sig (ed25519 over manifest.json's bytes) and
 * app.tgz (package.json with this version, package-lock.json, bin/plumctl.js, compiled dist/, web/ and the
 * production node_modules), so an unpacked release runs with plain node.
 */
export async function buildBundle(opts: BundleBuildOptions): Promise<BuiltBundle> {
  const started = Date.now();
  const sourceDir = path.resolve(opts.sourceDir ?? APP_ROOT);
  const pkg = readPackageJson(sourceDir);
  const current = semver.parse(pkg.version);
  const minimumVersion = opts.minimumVersion ?? (current ? `${current.major}.${current.minor}.0` : "0.0.0");
  checkVersions(opts.version, minimumVersion);
  const suites = opts.suites ?? Object.keys(SUITES);
  const changes = releaseChangesIn(sourceDir, opts.version);
  const migrationsDir = path.join(sourceDir, "migrations");
  const dataChanges = await releaseDataChanges(migrationsDir);
  // Before the long work: an engine that does not answer is known in a second, not after the compile.
  const engine = opts.images
    ? await reachableDocker(
        opts.dockerSocket,
        "--images builds the release's image with a local Docker engine: start dockerd, or point --docker-socket (or DOCKER_HOST=unix://…) at its socket; without --images the bundle needs none",
      )
    : undefined;

  const work = mkdtempSync(path.join(tmpdir(), "plum-bundle-"));
  try {
    const stage = path.join(work, "stage");
    mkdirSync(stage);
    writeFileSync(path.join(stage, "package.json"), JSON.stringify({ ...pkg, version: opts.version }, null, 2) + "\n");
    let distParent: string;
    if (opts.compiledDist) {
      distParent = path.dirname(path.resolve(opts.compiledDist));
      if (path.basename(opts.compiledDist) !== "dist") throw new PlumError(`compiledDist must be a folder named dist, not ${opts.compiledDist}`);
    } else {
      distParent = stage;
      await compileDist(sourceDir, path.join(stage, "dist"));
    }
    const compiled = Date.now();

    const modules = productionModules(sourceDir, { embeddedPostgres: opts.agent === true });
    const bundleDir = path.join(work, "bundle");
    mkdirSync(bundleDir);
    const app = path.join(bundleDir, "app.tgz");
    await tarGzip(appTarArgs({ stage, distParent, sourceDir, modules }), app, { level: opts.compressionLevel ?? 6, timeoutMs: 10 * 60_000 });
    const appBytes = statSync(app).size;
    const node = opts.agent ? path.join(bundleDir, NODE_MEMBER) : undefined;
    if (node) await tarGzip(nodeRuntimeTarArgs(work), node, { level: opts.compressionLevel ?? 6, timeoutMs: 10 * 60_000 });
    const schemaVersion = expectedSchemaVersion(migrationsDir);
    const packed = Date.now();

    let image: { id: string; tag: string; labels: Record<string, string>; sha256: string; bytes: number } | undefined;
    if (engine) {
      const imageFile = path.join(bundleDir, IMAGE_MEMBER);
      const build = async (file: string) => {
        const tree = path.join(work, "image-app");
        mkdirSync(tree);
        try {
          await runChild(appUnpackArgs(app, tree), { what: "tar (unpacking app.tgz for the image)", timeoutMs: 10 * 60_000 });
          return (await buildReleaseImage(engine.docker, { appDir: tree, version: opts.version, schemaVersion, file, workDir: work })).id;
        } finally {
          rmSync(tree, { recursive: true, force: true });
        }
      };
      let id: string;
      if (opts.imageCache) {
        const cached = await opts.imageCache(build);
        copyFileSync(cached.file, imageFile);
        id = cached.id;
      } else {
        id = await build(imageFile);
      }
      image = {
        id,
        tag: productImageTag(opts.version),
        labels: releaseImageLabels({ version: opts.version, schemaVersion }),
        sha256: await sha256OfFile(imageFile),
        bytes: statSync(imageFile).size,
      };
    }
    const imaged = Date.now();

    const manifest: BundleManifest = {
      format: 1,
      name: "plum",
      version: opts.version,
      schemaVersion,
      minimumVersion,
      createdAt: new Date().toISOString(),
      artefacts: [
        { name: "app.tgz", sha256: await sha256OfFile(app), bytes: appBytes },
        ...(node ? [{ name: NODE_MEMBER, sha256: await sha256OfFile(node), bytes: statSync(node).size }] : []),
        ...(image ? [{ name: IMAGE_MEMBER, sha256: image.sha256, bytes: image.bytes }] : []),
      ],
      suites,
      migrations: migrationNames(migrationsDir),
      ...(changes && { changes }),
      dataChanges,
      ...(image && { image: { file: IMAGE_MEMBER, tag: image.tag, id: image.id, labels: image.labels } }),
      ...(node && { agent: { file: NODE_MEMBER, nodeVersion: process.version } }),
    };
    const bytes = manifestBytes(manifest);
    writeFileSync(path.join(bundleDir, "manifest.json"), bytes);
    writeFileSync(path.join(bundleDir, "manifest.sig"), sign(bytes, opts.signingKey) + "\n");

    mkdirSync(opts.outDir, { recursive: true });
    const file = path.join(path.resolve(opts.outDir), bundleFileName(opts.version));
    // Written aside and renamed: a half-written bundle never carries the final name.
    const partial = `${file}.partial-${randomBytes(4).toString("hex")}`;
    try {
      await runChild(bundleTarArgs(partial, bundleDir, image !== undefined, node !== undefined), { what: "tar (writing the bundle)", timeoutMs: 5 * 60_000 });
      renameSync(partial, file);
    } finally {
      rmSync(partial, { force: true });
    }
    const finished = Date.now();
    const unreadDataChanges = Object.entries(dataChanges).flatMap(([name, d]) => (d.unread ?? []).map((u) => `${name}: ${u}`));
    return {
      file,
      manifest,
      appBytes,
      ...(image && { imageBytes: image.bytes }),
      unreadDataChanges,
      timings: {
        compileMs: compiled - started,
        packMs: finished - compiled - (imaged - packed),
        ...(image && { imageMs: imaged - packed }),
        totalMs: finished - started,
      },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
