import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import semver from "semver";
import { runChild } from "../../lib/child-process.ts";
import { PlumError } from "../../lib/errors.ts";
import { sha256OfFile } from "../../lib/file-hashes.ts";
import { bundleMembers, BUNDLE_MEMBERS, IMAGE_MEMBER, NODE_MEMBER, parseManifest, type BundleManifest } from "./bundle-manifest.ts";
import { parseVendorPublicKey, verifySignature } from "./bundle-signing.ts";
import { LOADED_IMAGE_FILE } from "./release-images.ts";
import { parseTarListing, unsafeMembers, type TarMember } from "./tar-listing.ts";
import { escapingEntries } from "./unpacked-tree.ts";

export type BundleCheck = "format" | "signature" | "checksum" | "upgrade-path" | "duplicate" | "disk" | "key" | "image";

/** A bundle the appliance will not import; `check` names the verification that failed. Nothing was changed. */
export class BundleRejected extends PlumError {
  readonly check: BundleCheck;
  constructor(check: BundleCheck, message: string, hint: string, detail?: string) {
    super(message, { hint, detail });
    this.check = check;
  }
}

export interface ImportContext {
  releasesDir: string;
  vendorPublicKey?: string;
  currentVersion: string;
  /** Whether a version is already imported or installed. */
  isPresent(version: string): boolean;
  freeBytes(dir: string): number;
  /**
   * Set when the appliance runs its instances as containers (runtime.kind: docker): a bundle's image is loaded
   * once every artefact is verified, before the release gets its folder. (A bundle without one still imports:
   * the docker runtime runs it from its folder, mounted read-only, where the agent runs on the host.)
   */
  images?: ImportImages;
}

/** How an import puts a release's image into the engine, and takes it back when the import fails after all. */
export interface ImportImages {
  /** Throws (with a hint) when the engine does not answer: asked before anything is extracted. */
  ready(): Promise<void>;
  /** Load the verified image.tar of `manifest`'s release; resolves with what to write as the release's record of it. */
  load(file: string, manifest: BundleManifest): Promise<{ record: (releaseDir: string) => void; undo: () => Promise<void> }>;
}

const MIB = 1024 * 1024;
const LIMITS: Record<string, number> = { "manifest.json": MIB, "manifest.sig": 1024 };
const REQUIRED_IN_APP = ["package.json", "bin/plumctl.js", "dist/cli/main.js"];
const ASK_VENDOR = "ask the vendor for the bundle again (and compare its sha256 with the release notes)";
// Each import extracts app.tgz (1×) and unpacks it (about 2× more); the rest is room for the appliance to work.
export const diskNeeded = (appBytes: number) => 3 * appBytes + 200 * MIB;

/** `tar -tv`: the listing parseTarListing reads. */
export function tarListArgs(archive: string, gzip: boolean): string[] {
  return ["tar", gzip ? "-tvzf" : "-tvf", archive];
}

/** Extract `members` (default all) of `archive` into `dir`, owned by us and with our umask, whatever the archive says. */
export function tarExtractArgs(archive: string, dir: string, opts: { gzip?: boolean; members?: string[] } = {}): string[] {
  return ["tar", opts.gzip ? "-xzf" : "-xf", archive, "-C", dir, "--no-same-owner", "--no-same-permissions", ...(opts.members ?? [])];
}

async function listTar(file: string, gzip: boolean, what: string): Promise<TarMember[]> {
  let output: string;
  try {
    output = (await runChild(tarListArgs(file, gzip), { what: `tar (listing ${what})`, timeoutMs: 2 * 60_000 })).stdout;
  } catch (err) {
    throw new BundleRejected("format", `${what} is not a readable tar archive`, ASK_VENDOR, (err as PlumError).detail);
  }
  const { members, unreadable } = parseTarListing(output);
  if (unreadable.length > 0)
    throw new BundleRejected("format", `${what} lists members that cannot be read safely: ${unreadable.slice(0, 3).join("; ")}`, ASK_VENDOR);
  return members;
}

function checkOuterMembers(file: string, members: TarMember[]): void {
  const names = members.map((m) => m.name);
  const expected = bundleMembers(names.includes(IMAGE_MEMBER), names.includes(NODE_MEMBER));
  const exact = names.length === expected.length && expected.every((n) => names.includes(n));
  if (!exact) {
    throw new BundleRejected(
      "format",
      `${path.basename(file)} must hold exactly ${BUNDLE_MEMBERS.join(", ")}; it holds ${names.join(", ") || "nothing"}`,
      `${ASK_VENDOR}; a bundle is never repacked by hand`,
    );
  }
  for (const m of members) {
    if (m.type !== "-") throw new BundleRejected("format", `${m.name} in ${path.basename(file)} is not a regular file (type "${m.type}")`, ASK_VENDOR);
    if (LIMITS[m.name] !== undefined && m.size > LIMITS[m.name])
      throw new BundleRejected("format", `${m.name} is ${m.size} bytes, more than the ${LIMITS[m.name]} a bundle's ${m.name} may be`, ASK_VENDOR);
  }
}

function checkAppMembers(members: TarMember[]): void {
  const unsafe = unsafeMembers(members);
  if (unsafe.length > 0) {
    throw new BundleRejected(
      "format",
      `app.tgz holds ${unsafe.length} member(s) that could write outside the release, e.g. ${unsafe[0].member.name}: ${unsafe[0].why}`,
      ASK_VENDOR,
      unsafe
        .slice(0, 10)
        .map((x) => `${x.member.name}: ${x.why}`)
        .join("\n"),
    );
  }
  const names = new Set(members.map((m) => m.name.replace(/\/$/, "")));
  const missing = REQUIRED_IN_APP.filter((n) => !names.has(n));
  if (missing.length > 0) throw new BundleRejected("format", `app.tgz lacks ${missing.join(", ")}: it is not a Plum release`, ASK_VENDOR);
  // image-loaded.json is the appliance's record of the image it loaded: pruning acts on it, so a bundle never brings one.
  for (const own of [...BUNDLE_MEMBERS, IMAGE_MEMBER, NODE_MEMBER, LOADED_IMAGE_FILE])
    if (names.has(own)) throw new BundleRejected("format", `app.tgz holds its own ${own}, which would hide the verified one`, ASK_VENDOR);
}

function verifyManifest(dir: string, publicKey: ReturnType<typeof parseVendorPublicKey>): BundleManifest {
  const bytes = readFileSync(path.join(dir, "manifest.json"));
  const parsed = parseManifest(bytes);
  if ("problems" in parsed) throw new BundleRejected("format", `manifest.json is not a Plum bundle manifest: ${parsed.problems.join("; ")}`, ASK_VENDOR);
  if (!verifySignature(bytes, readFileSync(path.join(dir, "manifest.sig"), "utf8"), publicKey)) {
    throw new BundleRejected(
      "signature",
      `manifest.sig of ${parsed.manifest.version} is not a valid signature by the configured vendor key`,
      "the bundle was altered or signed by another key: get it again from the vendor, and check releases.vendorPublicKey against the vendor's release notes",
    );
  }
  return parsed.manifest;
}

/** Whether the image the manifest names and the image.tar the bundle holds go together. */
function checkImageMembers(manifest: BundleManifest, outer: TarMember[]): void {
  const held = outer.some((m) => m.name === IMAGE_MEMBER);
  if (manifest.image && !held)
    throw new BundleRejected("format", `the manifest names the image ${manifest.image.tag}, but the bundle holds no ${IMAGE_MEMBER}`, ASK_VENDOR);
  if (!manifest.image && held) throw new BundleRejected("format", `the bundle holds ${IMAGE_MEMBER}, which its signed manifest does not list`, ASK_VENDOR);
  const node = outer.some((m) => m.name === NODE_MEMBER);
  if (manifest.agent && !node) throw new BundleRejected("format", `the manifest names a new agent, but the bundle holds no ${NODE_MEMBER}`, ASK_VENDOR);
  if (!manifest.agent && node) throw new BundleRejected("format", `the bundle holds ${NODE_MEMBER}, which its signed manifest does not list`, ASK_VENDOR);
}

/** Extract one artefact of the bundle into `dir` and check its size and sha256 against the signed manifest. */
async function verifyArtefact(file: string, dir: string, manifest: BundleManifest, name: string, listed: TarMember): Promise<string> {
  const expected = manifest.artefacts.find((a) => a.name === name);
  if (!expected) throw new BundleRejected("format", `the manifest lists no ${name}`, ASK_VENDOR);
  const mismatch = (actual: string) =>
    new BundleRejected("checksum", `${name} does not match the signed manifest: ${actual}`, `the bundle was damaged or altered on the way: ${ASK_VENDOR}`);
  // Checked on the listing first, so a bundle padded with a huge member is refused before it is written out.
  if (listed.size !== expected.bytes) throw mismatch(`${listed.size} bytes, the manifest says ${expected.bytes}`);
  await runChild(tarExtractArgs(file, dir, { members: [name] }), { what: `tar (extracting ${name})`, timeoutMs: 10 * 60_000 });
  const extracted = path.join(dir, name);
  const size = statSync(extracted).size;
  if (size !== expected.bytes) throw mismatch(`${size} bytes, the manifest says ${expected.bytes}`);
  const sha256 = await sha256OfFile(extracted);
  if (sha256 !== expected.sha256) throw mismatch(`sha256 ${sha256}, the manifest says ${expected.sha256}`);
  return extracted;
}

function checkPlacement(manifest: BundleManifest, appBytes: number, imageBytes: number, ctx: ImportContext): void {
  if (!semver.gte(ctx.currentVersion, manifest.minimumVersion)) {
    throw new BundleRejected(
      "upgrade-path",
      `${manifest.version} upgrades from ${manifest.minimumVersion} or newer; this appliance runs ${ctx.currentVersion}`,
      `upgrade to ${manifest.minimumVersion} (or a later release that ${manifest.version} accepts) first`,
    );
  }
  if (ctx.isPresent(manifest.version)) {
    throw new BundleRejected("duplicate", `release ${manifest.version} is already on this appliance`, "nothing to do: `plumctl release list` shows it");
  }
  const free = ctx.freeBytes(ctx.releasesDir);
  // image.tar stays in the release's folder (moved there, not copied), so a later switch to docker can load it.
  const needed = diskNeeded(appBytes) + imageBytes;
  if (free < needed) {
    const mib = (n: number) => `${Math.floor(n / MIB)} MiB`;
    throw new BundleRejected(
      "disk",
      `${mib(free)} free on ${ctx.releasesDir}, ${mib(needed)} needed to import ${manifest.version} (3 × its ${mib(appBytes)} app.tgz + 200 MiB${imageBytes ? ` + its ${mib(imageBytes)} image.tar` : ""})`,
      "free space there (`plumctl release list`, then prune old releases) and import again",
    );
  }
}

/**
 * Verify a bundle and unpack it as releasesDir/VERSION: key, format, signature, checksum, upgrade path,
 * duplicate, disk, in that order; image.tar (when the bundle has one) is checked against the manifest like
 * app.tgz before anything is unpacked or loaded, kept in the release's folder, and loaded into the engine
 * when `ctx.images` is set. Work happens in dot-folders of releasesDir (same file system, so the final
 * rename is atomic); whatever fails, releasesDir is left as it was and no image stays loaded.
 */
export async function importBundle(file: string, ctx: ImportContext): Promise<BundleManifest> {
  if (!ctx.vendorPublicKey) {
    throw new BundleRejected(
      "key",
      "no vendor public key is configured, so no bundle can be verified",
      "set releases.vendorPublicKey in plum.yaml (or PLUM_VENDOR_PUBLIC_KEY) to the key in the vendor's release notes",
    );
  }
  let publicKey;
  try {
    publicKey = parseVendorPublicKey(ctx.vendorPublicKey);
  } catch (err) {
    throw new BundleRejected("key", (err as PlumError).message, (err as PlumError).hint ?? "");
  }
  if (!existsSync(file) || !statSync(file).isFile()) throw new BundleRejected("format", `${file} is not a file`, "give the path of plum-VERSION.tar");
  const outer = await listTar(file, false, path.basename(file));
  checkOuterMembers(file, outer);

  const createdReleasesDir = !existsSync(ctx.releasesDir);
  mkdirSync(ctx.releasesDir, { recursive: true });
  const work = mkdtempSync(path.join(ctx.releasesDir, ".import-"));
  let partial: string | undefined;
  let imported = false;
  let loaded: Awaited<ReturnType<ImportImages["load"]>> | undefined;
  try {
    await runChild(tarExtractArgs(file, work, { members: ["manifest.json", "manifest.sig"] }), { what: "tar (extracting the manifest)", timeoutMs: 60_000 });
    const manifest = verifyManifest(work, publicKey);
    checkImageMembers(manifest, outer);
    if (manifest.image && ctx.images) {
      try {
        await ctx.images.ready();
      } catch (err) {
        throw new BundleRejected("image", `${manifest.version}'s image cannot be loaded: ${(err as Error).message}`, (err as PlumError).hint ?? "");
      }
    }
    const listed = (name: string) => outer.find((m) => m.name === name)!;
    const app = await verifyArtefact(file, work, manifest, "app.tgz", listed("app.tgz"));
    checkPlacement(manifest, statSync(app).size, manifest.image ? listed(IMAGE_MEMBER).size : 0, ctx);
    const image = manifest.image ? await verifyArtefact(file, work, manifest, IMAGE_MEMBER, listed(IMAGE_MEMBER)) : undefined;
    checkAppMembers(await listTar(app, true, "app.tgz"));
    // Kept in the release's folder, verified: an agent upgrade unpacks it into /opt/plum/<version>/node.
    const nodeRuntime = manifest.agent ? await verifyArtefact(file, work, manifest, NODE_MEMBER, listed(NODE_MEMBER)) : undefined;

    // Its own folder: two imports of one version at once never unpack into each other.
    partial = mkdtempSync(path.join(ctx.releasesDir, `.partial-${manifest.version}-`));
    chmodSync(partial, 0o755); // mkdtemp's 0700 would keep the instances' unprivileged user out of the release
    await runChild(tarExtractArgs(app, partial, { gzip: true }), { what: "tar (unpacking app.tgz)", timeoutMs: 10 * 60_000 });
    // The listing was read by our parser; what tar really made is checked too, before the folder gets its name.
    const escaping = await escapingEntries(partial);
    if (escaping.length > 0) {
      throw new BundleRejected(
        "format",
        `app.tgz unpacked ${escaping.length} entr${escaping.length === 1 ? "y" : "ies"} that lead outside the release, e.g. ${escaping[0].rel} -> ${escaping[0].leadsTo}`,
        ASK_VENDOR,
        escaping
          .slice(0, 10)
          .map((e) => `${e.rel} -> ${e.leadsTo}`)
          .join("\n"),
      );
    }
    const unpackedVersion = JSON.parse(readFileSync(path.join(partial, "package.json"), "utf8")).version;
    if (unpackedVersion !== manifest.version)
      throw new BundleRejected("format", `app.tgz holds version ${unpackedVersion}, the manifest says ${manifest.version}`, ASK_VENDOR);
    if (image) renameSync(image, path.join(partial, IMAGE_MEMBER));
    if (nodeRuntime) renameSync(nodeRuntime, path.join(partial, NODE_MEMBER));
    if (image && ctx.images) {
      try {
        loaded = await ctx.images.load(path.join(partial, IMAGE_MEMBER), manifest);
      } catch (err) {
        throw new BundleRejected("image", `${manifest.version}'s image was not loaded: ${(err as Error).message}`, (err as PlumError).hint ?? ASK_VENDOR);
      }
      loaded.record(partial);
    }
    for (const name of ["manifest.json", "manifest.sig"]) copyFileSync(path.join(work, name), path.join(partial, name));
    try {
      renameSync(partial, path.join(ctx.releasesDir, manifest.version));
    } catch (err) {
      // Another import of the same version won the race.
      throw new BundleRejected(
        "duplicate",
        `release ${manifest.version} appeared while this import ran: ${(err as Error).message}`,
        "nothing to do: `plumctl release list` shows it",
      );
    }
    imported = true;
    return manifest;
  } finally {
    if (!imported) await loaded?.undo();
    rmSync(work, { recursive: true, force: true });
    if (partial) rmSync(partial, { recursive: true, force: true });
    if (!imported && createdReleasesDir && readdirSync(ctx.releasesDir).length === 0) rmdirSync(ctx.releasesDir);
  }
}
