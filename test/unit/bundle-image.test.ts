import { expect } from "chai";
import { appUnpackArgs, bundleTarArgs } from "../../appliance/releases/bundle-builder.ts";
import { bundleMembers, IMAGE_MEMBER, parseManifest, type BundleManifest } from "../../appliance/releases/bundle-manifest.ts";
import { releaseImageEngine } from "../../appliance/releases/release-importer.ts";
import { releaseImageLabels, releaseImageTag, splitTag } from "../../appliance/releases/release-images.ts";
import type { PlumConfig } from "../../lib/config.ts";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);
const ID = `sha256:${"c".repeat(64)}`;

/** A manifest as a bundle built without images carries it (every bundle before images). */
function oldManifest(): Record<string, unknown> {
  return {
    format: 1,
    name: "plum",
    version: "1.4.0",
    schemaVersion: "1732000000200_payouts",
    minimumVersion: "1.3.0",
    createdAt: "2026-12-01T10:00:00.000Z",
    artefacts: [{ name: "app.tgz", sha256: SHA_A, bytes: 100 }],
    suites: ["smoke"],
    migrations: ["1732000000200_payouts"],
  };
}

function withImage(edit: (m: Record<string, unknown>) => void = () => undefined): Record<string, unknown> {
  const m = oldManifest();
  m.artefacts = [...(m.artefacts as object[]), { name: IMAGE_MEMBER, sha256: SHA_B, bytes: 200 }];
  m.image = { file: IMAGE_MEMBER, tag: "plum-product:1.4.0", id: ID, labels: { "io.plum.version": "1.4.0" } };
  edit(m);
  return m;
}

function parse(m: Record<string, unknown>): { manifest: BundleManifest } | { problems: string[] } {
  return parseManifest(Buffer.from(JSON.stringify(m)));
}

describe("bundle images: the manifest field and the builder's arguments", () => {
  it("reads a manifest without an image as before, and one with its image and image.tar's artefact", () => {
    const old = parse(oldManifest());
    expect(old).to.have.property("manifest");
    expect((old as { manifest: BundleManifest }).manifest.image).to.equal(undefined);
    const parsed = parse(withImage());
    expect(parsed).to.have.property("manifest");
    const manifest = (parsed as { manifest: BundleManifest }).manifest;
    expect(manifest.image).to.deep.equal({ file: "image.tar", tag: "plum-product:1.4.0", id: ID, labels: { "io.plum.version": "1.4.0" } });
    expect(manifest.artefacts.map((a) => a.name)).to.deep.equal(["app.tgz", "image.tar"]);
  });

  it("refuses an image without its artefact, an artefact without its image, and an artefact listed twice", () => {
    expect(parse(withImage((m) => (m.artefacts = (m.artefacts as object[]).slice(0, 1))))).to.deep.equal({
      problems: ["artefacts: lists no image.tar, which image names"],
    });
    expect(parse(withImage((m) => delete m.image))).to.deep.equal({ problems: ["image: is missing, yet artefacts list image.tar"] });
    expect(parse(withImage((m) => (m.artefacts = [...(m.artefacts as object[]), { name: "app.tgz", sha256: SHA_B, bytes: 1 }])))).to.deep.equal({
      problems: ["artefacts: lists app.tgz more than once"],
    });
  });

  it("refuses an image whose id, tag, file or fields are not what an image record holds", () => {
    const problems = (edit: (image: Record<string, unknown>) => void) => {
      const result = parse(withImage((m) => edit(m.image as Record<string, unknown>)));
      return "problems" in result ? result.problems : [];
    };
    expect(problems((i) => (i.id = "c".repeat(64)))).to.deep.equal(["image.id: is not an image id (sha256:<64 hex>)"]);
    expect(problems((i) => (i.tag = "Plum-Product:1.4.0"))).to.deep.equal(["image.tag: is not an image tag (repository:tag)"]);
    expect(problems((i) => (i.tag = "plum-product"))).to.deep.equal(["image.tag: is not an image tag (repository:tag)"]);
    expect(problems((i) => (i.file = "../image.tar"))).to.have.length(1);
    expect(problems((i) => (i.password = "hunter2"))).to.deep.equal(['image: Unrecognized key: "password"']);
  });

  it("writes image.tar last in the bundle, and only when built with images", () => {
    expect(bundleMembers(false)).to.deep.equal(["manifest.json", "manifest.sig", "app.tgz"]);
    expect(bundleMembers(true)).to.deep.equal(["manifest.json", "manifest.sig", "app.tgz", "image.tar"]);
    const plain = bundleTarArgs("/out/plum-1.4.0.tar", "/w/bundle");
    expect(plain.slice(-4)).to.deep.equal(["/w/bundle", "manifest.json", "manifest.sig", "app.tgz"]);
    expect(bundleTarArgs("/out/plum-1.4.0.tar", "/w/bundle", true)).to.deep.equal([...plain, "image.tar"]);
    expect(plain).not.to.include("--sort=name");
  });

  it("unpacks app.tgz for the image with its modes kept and no owner taken from the archive", () => {
    expect(appUnpackArgs("/w/bundle/app.tgz", "/w/image-app")).to.deep.equal([
      "tar",
      "-x",
      "-z",
      "-p",
      "-f",
      "/w/bundle/app.tgz",
      "-C",
      "/w/image-app",
      "--no-same-owner",
    ]);
  });

  it("labels the image with the release's facts, and tags it in the configured repository", () => {
    expect(releaseImageLabels({ version: "1.4.0", schemaVersion: "1732000000200_payouts" })).to.deep.equal({
      "io.plum.image": "product",
      "io.plum.version": "1.4.0",
      "io.plum.schema-version": "1732000000200_payouts",
      "org.opencontainers.image.title": "plum",
      "org.opencontainers.image.version": "1.4.0",
    });
    expect(releaseImageTag("1.4.0")).to.equal("plum-product:1.4.0");
    expect(releaseImageTag("1.4.0", { repository: "acme/plum" })).to.equal("acme/plum:1.4.0");
    expect(splitTag("localhost:5000/acme/plum:1.4.0-rc.1")).to.deep.equal({ repo: "localhost:5000/acme/plum", tag: "1.4.0-rc.1" });
    expect(() => splitTag("localhost:5000/plum")).to.throw("localhost:5000/plum is not repository:tag");
  });

  it("loads images only when the config's runtime is docker, with its socket and repository", () => {
    const config = (runtime: unknown) => ({ runtime }) as unknown as PlumConfig;
    expect(releaseImageEngine(config(undefined))).to.equal(undefined);
    expect(releaseImageEngine(config({ kind: "process" }))).to.equal(undefined);
    expect(releaseImageEngine(config({ kind: "docker" }))).to.deep.equal({});
    expect(releaseImageEngine(config({ kind: "docker", docker: { socket: "/run/docker.sock", imageRepository: "acme/plum" } }))).to.deep.equal({
      socketPath: "/run/docker.sock",
      repository: "acme/plum",
    });
  });
});
