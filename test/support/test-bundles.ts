import { createHash, type KeyObject } from "node:crypto";
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { buildBundle, CODE_FILE, compileDist } from "../../appliance/releases/bundle-builder.ts";
import { generateDevSigningKey, loadVendorSigningKey, sign } from "../../appliance/releases/bundle-signing.ts";
import { runChild } from "../../lib/child-process.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { isAlive } from "../../lib/processes.ts";
import { waitFor } from "../../lib/wait.ts";
import { testDocker } from "./docker-engine.ts";
import { runSharedDir, runTempDir } from "./run-dir.ts";

/** What a release is built from: the sources, never node_modules, .plum or a stale dist. */
const TREE = [
  "bin",
  "lib",
  "product",
  "backup",
  "appliance",
  "installer",
  "cli",
  "migrations",
  "web",
  "CHANGELOG.md",
  "package.json",
  "package-lock.json",
  "tsconfig.json",
  "tsconfig.build.json",
];
/** What tsc reads: a bundle whose patch leaves these alone reuses the compiled dist/. */
const COMPILE_INPUTS = ["bin", "lib", "product", "backup", "appliance", "installer", "cli", "migrations", "tsconfig.json", "tsconfig.build.json"];
/** A TypeScript source tsc turns into a .js file (declarations and plain .js/.mjs are copied as they are). */
const CODE_SOURCE = /(?<!\.d)\.ts$/;

function tempDir(prefix: string): string {
  return runTempDir(prefix);
}

/** sha256 over the relative paths and contents of the files under `names` (files or folders) of `root`. */
function hashTree(root: string, names: string[]): string {
  const hash = createHash("sha256");
  const add = (rel: string) => {
    const abs = path.join(root, rel);
    if (!existsSync(abs)) return;
    if (statSync(abs).isDirectory()) {
      for (const name of readdirSync(abs).sort()) add(path.join(rel, name));
    } else {
      hash.update(rel).update("\0").update(readFileSync(abs)).update("\0");
    }
  };
  names.forEach(add);
  return hash.digest("hex");
}

/** Whether a process that took a build lock is still there (a killed worker leaves its lock behind). */
function lockHolderAlive(lock: string): boolean {
  try {
    return isAlive(Number(readFileSync(path.join(lock, "pid"), "utf8")));
  } catch {
    return true; // the holder has made the folder and not yet written its pid
  }
}

/**
 * One entry of the run's compiled-code cache (in the run's folder, shared by the --parallel workers), made
 * once: the first worker to need it builds it under a lock (an exclusive mkdir); the others wait for it.
 * `kind` names the cache and what an entry holds (a compiled dist/, or a release image).
 */
async function cachedEntry(key: string, build: (outDir: string) => Promise<void>, kind: { cache: string; holds: string } = DIST_CACHE): Promise<string> {
  const entry = path.join(runSharedDir(kind.cache), key);
  const lock = `${entry}.building`;
  const outcome = await waitFor(
    `a ${kind.holds} in the run's cache`,
    async (): Promise<{ failed?: unknown } | undefined> => {
      if (existsSync(path.join(entry, kind.holds))) return {};
      try {
        mkdirSync(lock);
      } catch {
        if (!lockHolderAlive(lock)) rmSync(lock, { recursive: true, force: true });
        return undefined;
      }
      try {
        writeFileSync(path.join(lock, "pid"), String(process.pid));
        await build(path.join(lock, kind.holds));
        rmSync(path.join(lock, "pid"));
        renameSync(lock, entry);
        return {};
      } catch (err) {
        rmSync(lock, { recursive: true, force: true });
        return { failed: err }; // a compile error is an answer, not a reason to wait on
      }
    },
    { timeoutMs: 300_000, maxDelayMs: 500 },
  );
  if (outcome.failed) throw outcome.failed;
  return path.join(entry, kind.holds);
}

const DIST_CACHE = { cache: "dist-cache", holds: "dist" };
const IMAGE_CACHE = { cache: "image-cache", holds: "image" };

/**
 * The builder's image cache for one test tree: an image.tar and its id per tree and version, built once a run
 * (a docker import and save of some 200 MB) and shared by the workers; the engine keeps none of them.
 */
function imageCacheFor(tree: string, version: string): NonNullable<Parameters<typeof buildBundle>[0]["imageCache"]> {
  const key = createHash("sha256").update(hashTree(tree, TREE)).update(`\0${version}\0${process.execPath}`).digest("hex");
  return async (build) => {
    const dir = await cachedEntry(
      key,
      async (out) => {
        mkdirSync(out);
        writeFileSync(path.join(out, "id"), await build(path.join(out, "image.tar")));
      },
      IMAGE_CACHE,
    );
    return { file: path.join(dir, "image.tar"), id: readFileSync(path.join(dir, "id"), "utf8") };
  };
}

/** Every file under `names` (files or folders) of `root`, relative to it. */
function filesUnder(root: string, names: string[]): string[] {
  const found: string[] = [];
  const add = (rel: string) => {
    const abs = path.join(root, rel);
    if (!existsSync(abs)) return;
    if (statSync(abs).isDirectory()) for (const name of readdirSync(abs)) add(path.join(rel, name));
    else found.push(rel);
  };
  names.forEach(add);
  return found;
}

/** The files under COMPILE_INPUTS that `tree` adds or changes against this checkout, and those it drops. */
function delta(tree: string): { changed: string[]; removed: string[] } {
  const files = (root: string) => new Map(filesUnder(root, COMPILE_INPUTS).map((rel) => [rel, readFileSync(path.join(root, rel))]));
  const mine = files(APP_ROOT);
  const theirs = files(tree);
  return {
    changed: [...theirs].filter(([rel, bytes]) => !mine.get(rel)?.equals(bytes)).map(([rel]) => rel),
    removed: [...mine.keys()].filter((rel) => !theirs.has(rel)),
  };
}

/** Every file of the code folders of `root` (COMPILE_INPUTS without the tsconfigs). */
function sourceFiles(root: string): string[] {
  return filesUnder(
    root,
    COMPILE_INPUTS.filter((name) => !name.startsWith("tsconfig")),
  );
}

/**
 * Write `files` of `tree` into the dist/ at `out` as tsc -p tsconfig.build.json would: each TypeScript source
 * transpiled alone with the same compiler options (ESM output, as NodeNext gives for this "type": "module"
 * package), every runtime file (SQL, templates; not .js/.mjs, which tsc does not emit) copied.
 */
function transpileInto(tree: string, out: string, files: string[]): void {
  const options = ts.getParsedCommandLineOfConfigFile(
    path.join(tree, "tsconfig.build.json"),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
  )!.options;
  const compilerOptions = {
    ...options,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    noEmit: false,
    // transpileModule assumes JSX is preserved unless told, which changes how a dynamic import is rewritten; we have none.
    jsx: ts.JsxEmit.React,
  };
  for (const rel of files) {
    if (CODE_FILE.test(rel) && !CODE_SOURCE.test(rel)) continue; // declarations and plain JavaScript: tsc writes none of them
    const target = path.join(out, CODE_SOURCE.test(rel) ? rel.replace(CODE_SOURCE, ".js") : rel);
    mkdirSync(path.dirname(target), { recursive: true });
    const source = readFileSync(path.join(tree, rel));
    writeFileSync(target, CODE_SOURCE.test(rel) ? ts.transpileModule(source.toString("utf8"), { compilerOptions, fileName: rel }).outputText : source);
  }
}

/**
 * This checkout's dist/, once per run: every source transpiled on its own, with no type check (the typecheck
 * is `npm run check`'s, which `npm test` runs first) — a third of tsc's CPU on two cores. The output is
 * tsc's for each file; releases themselves are still built by tsc (bundle-builder's compileDist).
 */
export function checkoutDist(): Promise<string> {
  return cachedEntry(hashTree(APP_ROOT, COMPILE_INPUTS), async (out) => transpileInto(APP_ROOT, out, sourceFiles(APP_ROOT)));
}

/**
 * A compiled dist/ of a patched `tree` (a test release: a migration added, a bug put in): this checkout's
 * dist/ with only the files its patch touched transpiled again. A patch that touches a tsconfig is compiled whole, by tsc.
 */
async function cachedDist(tree: string): Promise<string> {
  const base = await checkoutDist();
  const { changed, removed } = delta(tree);
  if (changed.length === 0 && removed.length === 0) return base;
  const key = hashTree(tree, COMPILE_INPUTS);
  if ([...changed, ...removed].some((rel) => rel.startsWith("tsconfig"))) return cachedEntry(key, (out) => compileDist(tree, out));
  return cachedEntry(key, async (out) => {
    cpSync(base, out, { recursive: true });
    for (const rel of removed) rmSync(path.join(out, CODE_SOURCE.test(rel) ? rel.replace(CODE_SOURCE, ".js") : rel), { force: true });
    transpileInto(tree, out, changed);
  });
}

export interface TestVendorKeys {
  keyFile: string;
  privateKey: KeyObject;
  publicKeyPem: string;
}

let vendorKeys: TestVendorKeys | undefined;

/** A vendor key pair for this test run (generated once, in a temp folder). */
export function testVendorKeys(): TestVendorKeys {
  if (!vendorKeys) {
    const keyFile = path.join(tempDir("plum-test-vendor-key-"), "vendor.key");
    const publicKeyPem = generateDevSigningKey(keyFile);
    vendorKeys = { keyFile, privateKey: loadVendorSigningKey(keyFile), publicKeyPem };
  }
  return vendorKeys;
}

/**
 * Build `plum-VERSION.tar` from a copy of this tree (node_modules linked, `patch` applied to the copy),
 * signed by `key`, into `outDir`. Returns the bundle's path.
 */
export async function buildTestBundle(opts: {
  version: string;
  minimumVersion?: string;
  patch?: (treeDir: string) => void;
  key: KeyObject | string;
  outDir: string;
  /** Also ship the release's image as image.tar (built with the run's engine, testDocker(); cached per tree and version). */
  images?: boolean;
  /** Carry a new agent (`--agent`): embedded PostgreSQL in app.tgz, this node as node.tgz. */
  agent?: boolean;
}): Promise<string> {
  const tree = tempDir("plum-test-tree-");
  try {
    for (const name of TREE) cpSync(path.join(APP_ROOT, name), path.join(tree, name), { recursive: true });
    symlinkSync(path.join(APP_ROOT, "node_modules"), path.join(tree, "node_modules"));
    opts.patch?.(tree);
    const built = await buildBundle({
      version: opts.version,
      minimumVersion: opts.minimumVersion,
      outDir: opts.outDir,
      signingKey: typeof opts.key === "string" ? loadVendorSigningKey(opts.key) : opts.key,
      sourceDir: tree,
      compiledDist: await cachedDist(tree),
      compressionLevel: 1,
      agent: opts.agent,
      ...(opts.images && { images: true, dockerSocket: testDocker().socketPath, imageCache: imageCacheFor(tree, opts.version) }),
    });
    return built.file;
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

/**
 * Copy a bundle to `outFile` with its members changed by `change` (given the folder they were extracted
 * to), written back as a plain tar of whatever that folder then holds, in bundle order first.
 */
export async function rewriteBundle(file: string, outFile: string, change: (dir: string) => void | Promise<void>): Promise<string> {
  const dir = tempDir("plum-test-rewrite-");
  try {
    await runChild(["tar", "-xf", file, "-C", dir], { what: "extracting a test bundle", timeoutMs: 60_000 });
    await change(dir);
    const order = ["manifest.json", "manifest.sig", "app.tgz"];
    const members = [
      ...order.filter((n) => existsSync(path.join(dir, n))),
      ...readdirSync(dir)
        .filter((n) => !order.includes(n))
        .sort(),
    ];
    mkdirSync(path.dirname(outFile), { recursive: true });
    await runChild(["tar", "-cf", outFile, "-C", dir, ...members], { what: "writing a test bundle", timeoutMs: 60_000 });
    return outFile;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Replace manifest.json (changed by `edit`) and sign it again with `key`, as a vendor would. */
export function resignManifest(dir: string, key: KeyObject, edit: (manifest: Record<string, unknown>) => void): void {
  const manifest = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8"));
  edit(manifest);
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2) + "\n");
  writeFileSync(path.join(dir, "manifest.json"), bytes);
  writeFileSync(path.join(dir, "manifest.sig"), sign(bytes, key) + "\n");
}

/** A copy of a bundle with one byte in the middle of `member` (app.tgz unless told) flipped: same size, wrong sha256. */
export function withFlippedAppByte(file: string, outFile: string, member = "app.tgz"): Promise<string> {
  return rewriteBundle(file, outFile, (dir) => {
    const app = path.join(dir, member);
    const bytes = readFileSync(app);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(app, bytes);
  });
}

/** Every entry under `dir` with its type, size, mode and mtime: equal listings mean nothing was touched. */
export function folderListing(dir: string): string[] {
  if (!existsSync(dir)) return ["(absent)"];
  const lines: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const child = path.join(rel, name);
      const st = lstatSync(path.join(dir, child));
      lines.push(`${child} ${st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : "f"} ${st.size} ${st.mode.toString(8)} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(child);
    }
  };
  walk("");
  return lines;
}
