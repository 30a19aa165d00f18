import { expect } from "chai";
import { lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import semver from "semver";
import { BundleRejected } from "../../appliance/releases/bundle-importer.ts";
import { manifestBytes, type BundleManifest } from "../../appliance/releases/bundle-manifest.ts";
import { sign } from "../../appliance/releases/bundle-signing.ts";
import { ReleaseStore } from "../../appliance/releases/release-store.ts";
import { runChild } from "../../lib/child-process.ts";
import { sha256OfFile } from "../../lib/file-hashes.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { runTempDir } from "../support/run-dir.ts";
import { folderListing, testVendorKeys } from "../support/test-bundles.ts";

/** Every symlink under `dir` (not followed) with where it really leads. */
function linksUnder(dir: string): { rel: string; leadsTo: string }[] {
  const found: { rel: string; leadsTo: string }[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel))) {
      const child = path.join(rel, name);
      const st = lstatSync(path.join(dir, child));
      if (st.isSymbolicLink()) found.push({ rel: child, leadsTo: realpathSync.native(path.join(dir, child)) });
      else if (st.isDirectory()) walk(child);
    }
  };
  walk("");
  return found;
}

/**
 * Release bundles whose app.tgz is a crafted tar, written by the real `tar` and signed by the vendor key the
 * store pins, exactly as `npm run bundle` signs one: only the symlink checks stand between them and PLUM_HOME.
 */
describe("security: symlinks in a signed release bundle", function () {
  this.timeout(120_000);
  const keys = testVendorKeys();
  const version = semver.inc(APP_VERSION, "minor")!;
  let home: string;
  let releasesDir: string;
  let store: ReleaseStore;
  let work: string;

  beforeEach(() => {
    home = runTempDir("plum-home-");
    releasesDir = path.join(home, "releases");
    mkdirSync(releasesDir);
    writeFileSync(path.join(home, "plum.yaml"), "# what a link to PLUM_HOME would expose\n");
    store = new ReleaseStore({ releasesDir, keep: 3, vendorPublicKey: keys.publicKeyPem });
    work = runTempDir("plum-crafted-");
  });

  /**
   * A signed bundle whose app.tgz holds what a release needs to pass the other checks plus what `craft`
   * makes in its folder; `members` are the paths given to tar, in that order (tar stores a link as a link).
   */
  async function craftedBundle(name: string, craft: (dir: string) => void, members: string[]): Promise<string> {
    const dir = path.join(work, name);
    mkdirSync(path.join(dir, "bin"), { recursive: true });
    mkdirSync(path.join(dir, "dist", "cli"), { recursive: true });
    writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "plum", version }) + "\n");
    writeFileSync(path.join(dir, "bin", "plumctl.js"), "#!/usr/bin/env node\n");
    writeFileSync(path.join(dir, "dist", "cli", "main.js"), "export {};\n");
    craft(dir);
    const out = path.join(work, `${name}-bundle`);
    mkdirSync(out);
    const app = path.join(out, "app.tgz");
    await runChild(["tar", "-czf", app, "-C", dir, "package.json", "bin", "dist", ...members], { what: "tar (a crafted app.tgz)", timeoutMs: 60_000 });
    const manifest: BundleManifest = {
      format: 1,
      name: "plum",
      version,
      schemaVersion: "1732000000000_baseline",
      minimumVersion: APP_VERSION,
      createdAt: new Date().toISOString(),
      artefacts: [{ name: "app.tgz", sha256: await sha256OfFile(app), bytes: readFileSync(app).length }],
      suites: [],
      migrations: [],
    };
    const bytes = manifestBytes(manifest);
    writeFileSync(path.join(out, "manifest.json"), bytes);
    writeFileSync(path.join(out, "manifest.sig"), sign(bytes, keys.privateKey) + "\n");
    const bundle = path.join(work, `plum-${version}-${name}.tar`);
    await runChild(["tar", "-cf", bundle, "-C", out, "manifest.json", "manifest.sig", "app.tgz"], { what: "tar (a crafted bundle)", timeoutMs: 60_000 });
    return bundle;
  }

  async function refusedByFormat(bundle: string): Promise<BundleRejected> {
    const before = folderListing(releasesDir);
    const err = await store.import(bundle, { currentVersion: APP_VERSION }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const left = linksUnder(home);
    expect(err, `the import was refused (it left ${JSON.stringify(left)})`).to.be.instanceOf(BundleRejected);
    expect((err as BundleRejected).check, (err as Error).message).to.equal("format");
    expect(folderListing(releasesDir), "a refused bundle changes nothing").to.deep.equal(before);
    expect(left, "no link is left anywhere under PLUM_HOME").to.deep.equal([]);
    return err as BundleRejected;
  }

  it("refuses p -> ., q -> ., p/q/r -> ../.. (each harmless alone, together a link to PLUM_HOME)", async () => {
    const bundle = await craftedBundle(
      "stacked",
      (dir) => {
        symlinkSync(".", path.join(dir, "p"));
        symlinkSync(".", path.join(dir, "q"));
        symlinkSync("../..", path.join(dir, "r")); // stored as p/q/r: tar reaches it through p and q
      },
      ["p", "q", "p/q/r"],
    );
    const err = await refusedByFormat(bundle);
    expect(err.message).to.equal(
      "app.tgz holds 1 member(s) that could write outside the release, e.g. p/q/r: a path under the symlink p (a member is never unpacked through a link)",
    );
  });

  it("refuses a link whose target goes through another link (x -> ., y -> x/..)", async () => {
    const bundle = await craftedBundle(
      "chained",
      (dir) => {
        symlinkSync(".", path.join(dir, "x"));
        symlinkSync("x/..", path.join(dir, "y"));
      },
      ["x", "y"],
    );
    const err = await refusedByFormat(bundle);
    expect(err.message).to.equal(
      "app.tgz holds 1 member(s) that could write outside the release, e.g. y: a symlink to x/.. through the symlink x (a link is never followed through another)",
    );
  });

  it("still imports a release whose links stay inside it (node_modules/.bin style)", async () => {
    const bundle = await craftedBundle(
      "benign",
      (dir) => {
        mkdirSync(path.join(dir, "node_modules", ".bin"), { recursive: true });
        mkdirSync(path.join(dir, "node_modules", "tool", "bin"), { recursive: true });
        writeFileSync(path.join(dir, "node_modules", "tool", "bin", "tool.js"), "\n");
        symlinkSync("../tool/bin/tool.js", path.join(dir, "node_modules", ".bin", "tool"));
      },
      ["node_modules"],
    );
    const manifest = await store.import(bundle, { currentVersion: APP_VERSION });
    expect(manifest.version).to.equal(version);
    const release = path.join(releasesDir, version);
    expect(linksUnder(home)).to.deep.equal([
      { rel: path.join("releases", version, "node_modules/.bin/tool"), leadsTo: path.join(realpathSync.native(release), "node_modules/tool/bin/tool.js") },
    ]);
  });
});
