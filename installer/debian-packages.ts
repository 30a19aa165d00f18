import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { runChild } from "../lib/child-process.ts";
import { ChildProcessError, PlumError } from "../lib/errors.ts";
import { sha256OfFile } from "../lib/file-hashes.ts";

/** What the installed appliance needs from Debian beyond a minimal system: backups, and dumps and restores. */
export const HOST_PACKAGES = ["restic", "postgresql-client-15"];

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" };

export interface DebianPackage {
  name: string;
  version: string;
  architecture: string;
  /** The file name apt-get download gives it: name_version_arch.deb, an epoch's ":" written %3a. */
  file: string;
}

/**
 * Every package `names` need, recursively, with the version apt would install — the Priority: required ones
 * too: a host's own older perl-base cannot carry this build's perl, so the bundle must be able to upgrade it.
 */
export async function packageClosure(names: string[]): Promise<DebianPackage[]> {
  const { stdout } = await runChild(
    ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", ...names],
    { timeoutMs: 60_000, env: APT_ENV, missingHint: "the install bundle is built on Debian, with apt" },
  );
  // Lines at the left margin are packages; "<virtual>" ones are provided by one of the real ones listed too.
  const all = [...new Set(stdout.split("\n").filter((l) => /^[a-z0-9][a-z0-9+.-]+$/.test(l)))].sort();
  const { stdout: shown } = await runChild(["apt-cache", "show", "--no-all-versions", ...all], { timeoutMs: 60_000, env: APT_ENV });
  const packages: DebianPackage[] = [];
  for (const stanza of shown.split(/\n\n+/)) {
    const field = (f: string) => new RegExp(`^${f}: (.*)$`, "m").exec(stanza)?.[1]?.trim();
    const name = field("Package");
    if (!name) continue;
    const version = field("Version")!;
    const architecture = field("Architecture")!;
    packages.push({ name, version, architecture, file: `${name}_${version.replace(":", "%3a")}_${architecture}.deb` });
  }
  const missing = names.filter((n) => !packages.some((p) => p.name === n));
  if (missing.length > 0)
    throw new PlumError(`apt knows no installable ${missing.join(", ")}`, { hint: "run apt-get update (Debian 12's main archive carries them)" });
  return packages;
}

/**
 * The .deb files of `packages` in `outDir`, downloaded with `apt-get download` into `cacheDir` when not there
 * from an earlier build (a file name carries the exact version, so a cached one is the same package).
 */
export async function downloadPackages(packages: DebianPackage[], cacheDir: string, outDir: string): Promise<string[]> {
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const missing = packages.filter((p) => !existsSync(path.join(cacheDir, p.file)));
  if (missing.length > 0) {
    // Downloaded aside, then renamed: an interrupted download never looks cached.
    const partial = path.join(cacheDir, `.partial-${process.pid}`);
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { mode: 0o755 });
    try {
      await runChild(["apt-get", "download", ...missing.map((p) => `${p.name}=${p.version}`)], {
        timeoutMs: 10 * 60_000,
        cwd: partial,
        env: APT_ENV,
        what: "apt-get download (the install bundle's Debian packages)",
      });
      for (const f of readdirSync(partial)) renameSync(path.join(partial, f), path.join(cacheDir, f));
    } finally {
      rmSync(partial, { recursive: true, force: true });
    }
  }
  return packages.map((p) => {
    const from = path.join(cacheDir, p.file);
    if (!existsSync(from)) throw new PlumError(`apt-get download gave no ${p.file}`, { hint: "run apt-get update and build again" });
    copyFileSync(from, path.join(outDir, p.file));
    return p.file;
  });
}

/** The packages dpkg has installed ("install ok installed"), by name. */
async function installedPackages(): Promise<Set<string>> {
  const { stdout } = await runChild(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\\n"], { timeoutMs: 30_000, env: APT_ENV });
  return new Set(
    stdout
      .split("\n")
      .filter((l) => l.startsWith("ii"))
      .map((l) => l.split(/\s+/)[1]),
  );
}

/**
 * debs/Packages: the index that makes the folder a flat apt repository (`deb [trusted=yes] file:DIR ./`),
 * each stanza the package's own control fields plus where the file is, its size and sha256. Trusted because
 * install.sh has checked every file against the signed SHA256SUMS before apt reads any.
 */
export async function packagesIndex(debDir: string, files: string[]): Promise<string> {
  const stanzas: string[] = [];
  for (const file of [...files].sort()) {
    const deb = path.join(debDir, file);
    const { stdout } = await runChild(["dpkg-deb", "-f", deb], { timeoutMs: 15_000, env: APT_ENV });
    stanzas.push(`${stdout.trimEnd()}\nFilename: ./${file}\nSize: ${statSync(deb).size}\nSHA256: ${await sha256OfFile(deb)}\n`);
  }
  return stanzas.join("\n");
}

/** apt-get's options that make it read only the bundle's folder: its own source list, lists and cache in `work`. */
function localAptOptions(work: string): string[] {
  return [
    "-o",
    `Dir::Etc::SourceList=${path.join(work, "sources.list")}`,
    "-o",
    "Dir::Etc::SourceParts=/nonexistent",
    "-o",
    `Dir::State::Lists=${path.join(work, "lists")}`,
    "-o",
    `Dir::Cache=${path.join(work, "cache")}`,
    "-o",
    "APT::Sandbox::User=root",
    // The host's own apt (unattended-upgrades) may hold dpkg's lock a while: wait for it rather than fail.
    "-o",
    "DPkg::Lock::Timeout=300",
  ];
}

/**
 * Install HOST_PACKAGES from the bundle's flat repository only (never the network): apt resolves them
 * against what the host has, installs what is missing and upgrades what a dependency needs newer; a package
 * the host has in a newer version stays. Returns the names newly installed (the undo removes those).
 */
export async function installFromBundle(debDir: string, log: (line: string) => void): Promise<{ installed: string[]; upgraded: boolean }> {
  const before = await installedPackages();
  if (HOST_PACKAGES.every((p) => before.has(p))) return { installed: [], upgraded: false };
  const work = mkdtempSync(path.join(tmpdir(), "plum-apt-"));
  try {
    mkdirSync(path.join(work, "lists", "partial"), { recursive: true });
    mkdirSync(path.join(work, "cache", "archives", "partial"), { recursive: true });
    writeFileSync(path.join(work, "sources.list"), `deb [trusted=yes] file:${path.resolve(debDir)} ./\n`);
    const options = localAptOptions(work);
    const update = await runChild(["apt-get", ...options, "update"], { timeoutMs: 5 * 60_000, env: APT_ENV, what: "apt-get update (the bundle's packages)" });
    log(update.stdout);
    const { stdout } = await runChild(["apt-get", ...options, "install", "-y", "--no-install-recommends", ...HOST_PACKAGES], {
      timeoutMs: 10 * 60_000,
      env: APT_ENV,
      what: "apt-get install (the bundle's Debian packages)",
      hint: "the bundle's packages are for Debian 12 (bookworm); the install log has what apt could not resolve",
    });
    log(stdout);
    const after = await installedPackages();
    return { installed: [...after].filter((p) => !before.has(p)).sort(), upgraded: /^\d+ upgraded/m.test(stdout) && !/^0 upgraded/m.test(stdout) };
  } catch (err) {
    // apt explains an unresolvable set on stdout ("The following packages have unmet dependencies: …").
    const detail = err instanceof ChildProcessError ? err.outputTail : "";
    if (detail) log(detail);
    throw err;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
/** Undo of installFromBundle: remove what it installed (configuration files stay, as apt-get remove keeps them). */
export async function removePackages(names: string[]): Promise<void> {
  if (names.length === 0) return;
  await runChild(["apt-get", "remove", "-y", ...names], { timeoutMs: 10 * 60_000, env: APT_ENV, what: "apt-get remove" });
}
