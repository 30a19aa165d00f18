import { expect } from "chai";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import semver from "semver";
import type { Agent } from "../../appliance/agent.ts";
import { BundleRejected } from "../../appliance/releases/bundle-importer.ts";
import { parseManifest, type BundleManifest } from "../../appliance/releases/bundle-manifest.ts";
import { parseVendorPublicKey, verifySignature } from "../../appliance/releases/bundle-signing.ts";
import { CONTAINER_APP_DIR, CONTAINER_NODE, CONTAINER_UID } from "../../appliance/releases/container-image.ts";
import { releaseCatalogueFor } from "../../appliance/releases/release-catalogue.ts";
import { releaseImporter } from "../../appliance/releases/release-importer.ts";
import type { PlumConfig } from "../../lib/config.ts";
import { imageIdOf, LOADED_IMAGE_FILE, readLoadedImage } from "../../appliance/releases/release-images.ts";
import { ReleaseStore } from "../../appliance/releases/release-store.ts";
import { runChild } from "../../lib/child-process.ts";
import { connectDocker } from "../../lib/docker/engine.ts";
import { sha256OfFile } from "../../lib/file-hashes.ts";
import { homeLayout } from "../../lib/paths.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { testDocker } from "../support/docker-engine.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { runTempDir } from "../support/run-dir.ts";
import { buildTestBundle, folderListing, resignManifest, rewriteBundle, testVendorKeys, withFlippedAppByte } from "../support/test-bundles.ts";

/** One member of a tar, read to memory (extracted to a folder of its own: binary output does not go through a string). */
async function tarMember(file: string, member: string): Promise<Buffer> {
  const dir = runTempDir("plum-tar-member-");
  try {
    await runChild(["tar", "-xf", file, "-C", dir, member], { what: `extracting ${member}`, timeoutMs: 60_000 });
    return readFileSync(path.join(dir, member));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function tarNames(file: string): Promise<string[]> {
  return (await runChild(["tar", "-tf", file], { what: "listing a bundle", timeoutMs: 60_000 })).stdout.trim().split("\n");
}

/**
 * Bundles built with images (the release image made from the tree app.tgz holds, shipped as image.tar), imported
 * on an appliance whose runtime is docker, against the run's real engine.
 */
describe("bundle images: image.tar built, verified, loaded, pruned", function () {
  this.timeout(600_000);
  // A version of its own: no other suite on the run's engine loads plum-product:<this>.
  const version = `${semver.inc(APP_VERSION, "minor")}-bundleimage.1`;
  const tag = `plum-product:${version}`;
  const keys = testVendorKeys();
  let work: string;
  let bundle: string;
  let manifest: BundleManifest;
  let docker: Docker;
  let socketPath: string;
  let agent: { agent: Agent; stop(): Promise<void> } | undefined;

  before(async () => {
    socketPath = testDocker().socketPath;
    docker = connectDocker(socketPath);
    work = runTempDir("plum-bundle-image-");
    bundle = await buildTestBundle({ version, key: keys.privateKey, outDir: path.join(work, "out"), images: true });
    const parsed = parseManifest(await tarMember(bundle, "manifest.json"));
    if ("problems" in parsed) throw new Error(parsed.problems.join("; "));
    manifest = parsed.manifest;
  });

  after(async () => {
    await agent?.stop();
    // Only what this suite made: the tag of its own version (a second load leaves nothing else).
    await docker
      .getImage(tag)
      .remove()
      .catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  });

  /** The appliance, its runtime docker on the run's engine (read by the release store from the config object). */
  async function dockerAppliance(): Promise<Agent> {
    agent = await startInProcessAgent((config) => {
      config.releases.vendorPublicKey = keys.publicKeyPem;
      config.runtime.kind = "docker";
      config.runtime.docker.socket = socketPath;
      config.runtime.docker.network = testDocker().network;
    });
    return agent.agent;
  }

  it("ships image.tar last in the bundle, its sha256, tag and id in the signed manifest", async () => {
    expect(await tarNames(bundle)).to.deep.equal(["manifest.json", "manifest.sig", "app.tgz", "image.tar"]);
    const bytes = await tarMember(bundle, "manifest.json");
    expect(verifySignature(bytes, (await tarMember(bundle, "manifest.sig")).toString("utf8"), parseVendorPublicKey(keys.publicKeyPem))).to.equal(true);
    const image = await tarMember(bundle, "image.tar");
    const entry = manifest.artefacts.find((a) => a.name === "image.tar")!;
    expect(entry).to.deep.equal({ name: "image.tar", sha256: createHash("sha256").update(image).digest("hex"), bytes: image.length });
    expect(manifest.image).to.deep.include({ file: "image.tar", tag });
    expect(manifest.image!.labels).to.include({ "io.plum.version": version, "io.plum.image": "product" });
    // The id is the digest of the image's config inside the `docker save` tar: what the engine will report.
    const tarFile = path.join(work, "image.tar");
    writeFileSync(tarFile, image);
    const [saved] = JSON.parse((await tarMember(tarFile, "manifest.json")).toString("utf8")) as { Config: string; RepoTags: string[] }[];
    expect(saved.RepoTags).to.deep.equal([tag]);
    const config = await tarMember(tarFile, saved.Config);
    expect(manifest.image!.id).to.equal(`sha256:${createHash("sha256").update(config).digest("hex")}`);
    // The build left the engine as it found it.
    expect(await imageIdOf(docker, tag)).to.equal(undefined);
  });

  it("refuses a copy with one flipped byte in image.tar: nothing loaded, nothing in releases/", async () => {
    const app = await dockerAppliance();
    const releasesDir = homeLayout(app.config.home).releasesDir;
    const before = folderListing(releasesDir);
    const tampered = await withFlippedAppByte(bundle, path.join(work, "tampered.tar"), "image.tar");
    const err = await releaseImporter({ store: app.releases, audit: app.audit, actor: "cli", file: tampered, productionVersion: APP_VERSION }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    const entry = manifest.artefacts.find((a) => a.name === "image.tar")!;
    const flipped = createHash("sha256")
      .update(await tarMember(tampered, "image.tar"))
      .digest("hex");
    expect(err?.message).to.equal(
      `release bundle refused by the checksum check: image.tar does not match the signed manifest: sha256 ${flipped}, the manifest says ${entry.sha256}`,
    );
    expect(await imageIdOf(docker, tag)).to.equal(undefined);
    // Neither the image the manifest names nor any image of this version: the engine is shared with the other
    // suites, so its whole list moves meanwhile.
    expect(await imageIdOf(docker, manifest.image!.id)).to.equal(undefined);
    expect(await docker.listImages({ filters: JSON.stringify({ label: [`io.plum.version=${version}`] }) })).to.deep.equal([]);
    expect(folderListing(releasesDir)).to.deep.equal(before);
  });

  it("refuses a bundle that drops image.tar its manifest names, or holds one its manifest does not list", async () => {
    const app = agent!.agent;
    const releasesDir = homeLayout(app.config.home).releasesDir;
    const before = folderListing(releasesDir);
    const dropped = await rewriteBundle(bundle, path.join(work, "dropped.tar"), (dir) => rmSync(path.join(dir, "image.tar")));
    const format = await app.releases.import(dropped, { currentVersion: APP_VERSION }).catch((e: unknown) => e as BundleRejected);
    expect(format).to.be.instanceOf(BundleRejected);
    expect((format as BundleRejected).check).to.equal("format");
    expect((format as BundleRejected).message).to.equal(`the manifest names the image ${tag}, but the bundle holds no image.tar`);
    const unlisted = await rewriteBundle(bundle, path.join(work, "unlisted.tar"), (dir) =>
      resignManifest(dir, keys.privateKey, (m) => {
        delete m.image;
        m.artefacts = (m.artefacts as { name: string }[]).filter((a) => a.name !== "image.tar");
      }),
    );
    const extra = await app.releases.import(unlisted, { currentVersion: APP_VERSION }).catch((e: unknown) => e as BundleRejected);
    expect((extra as BundleRejected).check).to.equal("format");
    expect((extra as BundleRejected).message).to.equal("the bundle holds image.tar, which its signed manifest does not list");
    expect(folderListing(releasesDir)).to.deep.equal(before);
    expect(await imageIdOf(docker, tag)).to.equal(undefined);
  });

  it("imports it on a docker-runtime appliance: plum-product:<version> loaded, non-root, its entrypoint and labels; image.tar kept", async () => {
    const app = agent!.agent;
    const imported = await releaseImporter({ store: app.releases, audit: app.audit, actor: "cli", file: bundle, productionVersion: APP_VERSION });
    expect(imported.image?.id).to.equal(manifest.image!.id);
    const info = await docker.getImage(tag).inspect();
    expect(info.Id).to.equal(manifest.image!.id);
    expect(info.Config.User).to.equal(`${CONTAINER_UID}:${CONTAINER_UID}`);
    expect(info.Config.Entrypoint).to.deep.equal([CONTAINER_NODE, `${CONTAINER_APP_DIR}/bin/plumctl.js`]);
    expect(info.Config.Cmd).to.deep.equal(["serve"]);
    expect(info.Config.WorkingDir).to.equal(CONTAINER_APP_DIR);
    expect(info.Config.Labels).to.deep.equal(manifest.image!.labels);
    const ref = app.releases.ref(version);
    expect(ref.image).to.equal(tag);
    expect(await sha256OfFile(path.join(ref.dir, "image.tar"))).to.equal(manifest.artefacts.find((a) => a.name === "image.tar")!.sha256);
    expect(readLoadedImage(ref.dir)).to.deep.include({ socketPath, id: manifest.image!.id, tags: [tag] });
  });

  it("removes the image when the release is pruned", async () => {
    const app = agent!.agent;
    app.config.releases.keep = 0; // read live by the store: every imported release beyond none goes
    expect(await app.catalogue.prune([])).to.deep.equal([version]);
    expect(existsSync(path.join(homeLayout(app.config.home).releasesDir, version))).to.equal(false);
    expect(await imageIdOf(docker, tag)).to.equal(undefined);
  });

  it("keeps image.tar on a process-runtime import, loads it on a later switch to docker, and leaves images it did not load at pruning", async () => {
    const releasesDir = path.join(work, "releases");
    mkdirSync(releasesDir);
    const processStore = new ReleaseStore({ releasesDir, keep: 0, vendorPublicKey: keys.publicKeyPem });
    await processStore.import(bundle, { currentVersion: APP_VERSION });
    const dir = processStore.ref(version).dir;
    expect(existsSync(path.join(dir, "image.tar"))).to.equal(true);
    expect(existsSync(path.join(dir, LOADED_IMAGE_FILE))).to.equal(false);
    expect(await imageIdOf(docker, tag)).to.equal(undefined);

    // Switched to docker: an upgrade's verify step checks the kept image.tar again and loads it.
    const dockerStore = new ReleaseStore({ releasesDir, keep: 0, vendorPublicKey: keys.publicKeyPem, images: { socketPath } });
    const config = { releases: { vendorPublicKey: keys.publicKeyPem }, runtime: { kind: "docker" } } as unknown as PlumConfig;
    expect(await releaseCatalogueFor(dockerStore, config).recheck(version, APP_VERSION)).to.include(
      `image: ${tag} in the engine, with the id its manifest signs`,
    );
    expect(await imageIdOf(docker, tag)).to.equal(manifest.image!.id);
    expect(await dockerStore.ensureImage(version)).to.equal(tag); // present: nothing loaded twice
    expect(readLoadedImage(dir)?.tags).to.deep.equal([tag]);

    // Another party's load of the same image: this appliance did not make that tag, so pruning leaves it.
    rmSync(path.join(dir, LOADED_IMAGE_FILE));
    expect(await dockerStore.prune([])).to.deep.equal([version]);
    expect(await imageIdOf(docker, tag)).to.equal(manifest.image!.id);
  });

  it("imports a bundle built without images on docker as before: nothing loaded, no image in its ref", async () => {
    const releasesDir = path.join(work, "releases-imageless");
    mkdirSync(releasesDir);
    const imageless = await rewriteBundle(bundle, path.join(work, "imageless.tar"), (dir) => {
      rmSync(path.join(dir, "image.tar"));
      resignManifest(dir, keys.privateKey, (m) => {
        delete m.image;
        m.artefacts = (m.artefacts as { name: string }[]).filter((a) => a.name !== "image.tar");
      });
    });
    // This version's images only: the engine is shared with the other suites, so its whole list moves meanwhile.
    const versionImages = async () => (await docker.listImages({ filters: JSON.stringify({ label: [`io.plum.version=${version}`] }) })).map((i) => i.Id).sort();
    const imagesBefore = await versionImages();
    const store = new ReleaseStore({ releasesDir, keep: 3, vendorPublicKey: keys.publicKeyPem, images: { socketPath } });
    expect((await store.import(imageless, { currentVersion: APP_VERSION })).image).to.equal(undefined);
    const ref = store.ref(version);
    expect(ref).not.to.have.property("image");
    expect(existsSync(path.join(ref.dir, "image.tar"))).to.equal(false);
    expect(await store.ensureImage(version)).to.equal(undefined);
    expect(await versionImages()).to.deep.equal(imagesBefore);
  });

  it("refuses to load a kept image.tar changed after import", async () => {
    const releasesDir = path.join(work, "releases-changed");
    mkdirSync(releasesDir);
    await docker.getImage(tag).remove();
    const store = new ReleaseStore({ releasesDir, keep: 3, vendorPublicKey: keys.publicKeyPem, images: { socketPath } });
    await new ReleaseStore({ releasesDir, keep: 3, vendorPublicKey: keys.publicKeyPem }).import(bundle, { currentVersion: APP_VERSION });
    const kept = path.join(store.ref(version).dir, "image.tar");
    const bytes = readFileSync(kept);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(kept, bytes);
    const err = await store.ensureImage(version).catch((e: unknown) => e as Error);
    expect((err as Error).message).to.equal(`the image.tar kept for ${version} does not match its signed manifest (sha256 ${await sha256OfFile(kept)})`);
    expect(await imageIdOf(docker, tag)).to.equal(undefined);
  });
});
