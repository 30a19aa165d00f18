import { createPublicKey, sign as signWith, type KeyObject } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import semver from "semver";
import { runChild } from "../lib/child-process.ts";
import { PlumError } from "../lib/errors.ts";
import { sha256OfFile } from "../lib/file-hashes.ts";
import { publicKeyFingerprint } from "../lib/key-fingerprint.ts";
import { APP_ROOT } from "../lib/paths.ts";
import { expectedSchemaVersion } from "../lib/version.ts";
import { appTarArgs, compileDist, tarGzip } from "../appliance/releases/bundle-builder.ts";
import { publicKeyPem } from "../appliance/releases/bundle-signing.ts";
import { productionModules } from "../appliance/releases/production-modules.ts";
import { downloadPackages, HOST_PACKAGES, packageClosure, packagesIndex, type DebianPackage } from "./debian-packages.ts";

/** The members of plum-install-X.Y.Z.tar that are not listed in SHA256SUMS: the key and the signature over the list. */
export const UNLISTED_MEMBERS = ["vendor-public-key.pem", "SHA256SUMS", "SHA256SUMS.sig"];

export const installBundleFileName = (version: string) => `plum-install-${version}.tar`;

/** install-manifest.json: what the bundle holds, for plumctl install and for whoever reads it. */
export interface InstallManifest {
  format: 1;
  name: "plum-install";
  version: string;
  schemaVersion: string;
  node: string;
  /** The Debian packages it carries, installed when the host lacks them. */
  packages: Array<Pick<DebianPackage, "name" | "version" | "architecture" | "file">>;
  createdAt: string;
}

export interface InstallBundleOptions {
  version: string;
  outDir: string;
  signingKey: KeyObject;
  /** Where downloaded .deb files are kept between builds. */
  debCache: string;
  sourceDir?: string;
  compressionLevel?: number;
  /** A dist/ already compiled from sourceDir, reused instead of running tsc again. */
  compiledDist?: string;
}

export interface BuiltInstallBundle {
  file: string;
  manifest: InstallManifest;
  fingerprint: string;
  bytes: number;
  timings: { compileMs: number; packagesMs: number; packMs: number; totalMs: number };
}

/** SHA256SUMS as sha256sum writes and checks it: "<hex>  <name>", one line per member, sorted by name. */
export function sha256sums(entries: Array<{ name: string; sha256: string }>): string {
  return [...entries]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((e) => `${e.sha256}  ${e.name}\n`)
    .join("");
}

/**
 * Build and sign `plum-install-VERSION.tar`, everything an offline Debian 12 host needs: install.sh, the
 * Node runtime this build runs on (node.tar.gz), the compiled appliance with its production node_modules and
 * the embedded PostgreSQL (app.tgz), the Debian packages of HOST_PACKAGES with their dependencies (debs/,
 * fetched with apt-get download now), install-manifest.json, and SHA256SUMS of all of them signed (raw
 * ed25519, SHA256SUMS.sig) by the vendor key, whose public half travels as vendor-public-key.pem: install.sh
 * trusts it only when its fingerprint is the one the admin types.
 */
export async function buildInstallBundle(opts: InstallBundleOptions): Promise<BuiltInstallBundle> {
  const started = Date.now();
  if (semver.valid(opts.version) !== opts.version) throw new PlumError(`--version ${opts.version} is not a semantic version`, { hint: "e.g. --version 1.4.0" });
  const sourceDir = path.resolve(opts.sourceDir ?? APP_ROOT);
  const pkg = JSON.parse(readFileSync(path.join(sourceDir, "package.json"), "utf8"));
  const work = mkdtempSync(path.join(tmpdir(), "plum-install-bundle-"));
  try {
    const stage = path.join(work, "stage");
    const bundleDir = path.join(work, "bundle");
    mkdirSync(stage);
    mkdirSync(bundleDir);
    writeFileSync(path.join(stage, "package.json"), JSON.stringify({ ...pkg, version: opts.version }, null, 2) + "\n");
    let distParent = stage;
    if (opts.compiledDist) {
      if (path.basename(opts.compiledDist) !== "dist") throw new PlumError(`compiledDist must be a folder named dist, not ${opts.compiledDist}`);
      distParent = path.dirname(path.resolve(opts.compiledDist));
    } else await compileDist(sourceDir, path.join(stage, "dist"));
    const compiled = Date.now();

    const closure = await packageClosure(HOST_PACKAGES);
    const debDir = path.join(bundleDir, "debs");
    const debFiles = await downloadPackages(closure, opts.debCache, debDir);
    writeFileSync(path.join(debDir, "Packages"), await packagesIndex(debDir, debFiles));
    const fetched = Date.now();

    const modules = productionModules(sourceDir, { embeddedPostgres: true });
    const level = opts.compressionLevel ?? 6;
    await tarGzip(appTarArgs({ stage, distParent, sourceDir, modules }), path.join(bundleDir, "app.tgz"), { level, timeoutMs: 10 * 60_000 });
    // The Node runtime as node.tar.gz: node/bin/node, the binary this build runs on (an official build needs only libc and libstdc++).
    const nodeTree = path.join(work, "node-runtime");
    mkdirSync(path.join(nodeTree, "node", "bin"), { recursive: true });
    copyFileSync(process.execPath, path.join(nodeTree, "node", "bin", "node"));
    await tarGzip(["tar", "-c", "-f", "-", "--owner=0", "--group=0", "--numeric-owner", "-C", nodeTree, "node"], path.join(bundleDir, "node.tar.gz"), {
      level,
      timeoutMs: 5 * 60_000,
    });
    const script = readFileSync(path.join(sourceDir, "installer", "install.sh"), "utf8").replaceAll("@VERSION@", opts.version);
    writeFileSync(path.join(bundleDir, "install.sh"), script, { mode: 0o755 });

    const manifest: InstallManifest = {
      format: 1,
      name: "plum-install",
      version: opts.version,
      schemaVersion: expectedSchemaVersion(path.join(sourceDir, "migrations")),
      node: process.version,
      packages: closure.map(({ name, version, architecture, file }) => ({ name, version, architecture, file })),
      createdAt: new Date().toISOString(),
    };
    writeFileSync(path.join(bundleDir, "install-manifest.json"), JSON.stringify(manifest, null, 2) + "\n");

    const listed = ["install.sh", "install-manifest.json", "node.tar.gz", "app.tgz", "debs/Packages", ...debFiles.map((f) => `debs/${f}`)];
    const sums = sha256sums(await Promise.all(listed.map(async (name) => ({ name, sha256: await sha256OfFile(path.join(bundleDir, name)) }))));
    writeFileSync(path.join(bundleDir, "SHA256SUMS"), sums);
    writeFileSync(path.join(bundleDir, "SHA256SUMS.sig"), signWith(null, Buffer.from(sums), opts.signingKey));
    const pub = publicKeyPem(createPublicKey(opts.signingKey));
    writeFileSync(path.join(bundleDir, "vendor-public-key.pem"), pub);

    mkdirSync(opts.outDir, { recursive: true });
    const file = path.join(path.resolve(opts.outDir), installBundleFileName(opts.version));
    const partial = `${file}.partial-${process.pid}`;
    try {
      // install.sh first (what an admin extracts), the signed list next, the big members last; no folder entries.
      const members = ["install.sh", ...UNLISTED_MEMBERS, ...listed.filter((m) => m !== "install.sh")];
      await runChild(["tar", "-c", "-f", partial, "--owner=0", "--group=0", "--numeric-owner", "--no-recursion", "-C", bundleDir, ...members], {
        what: "tar (writing the install bundle)",
        timeoutMs: 5 * 60_000,
      });
      renameSync(partial, file);
    } finally {
      rmSync(partial, { force: true });
    }
    const finished = Date.now();
    return {
      file,
      manifest,
      fingerprint: publicKeyFingerprint(pub),
      bytes: statSync(file).size,
      timings: { compileMs: compiled - started, packagesMs: fetched - compiled, packMs: finished - fetched, totalMs: finished - started },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
