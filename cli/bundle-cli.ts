// `npm run bundle -- --version X.Y.Z [--out DIR] [--minimum-version A.B.C] [--key FILE] [--images [--docker-socket PATH]] [--agent] [--install]`: build and sign a release bundle (or the offline install bundle).
import { createPublicKey } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { describeError, PlumError } from "../lib/errors.ts";
import { APP_ROOT } from "../lib/paths.ts";
import { writeAgentImages } from "../appliance/releases/agent-images-output.ts";
import { buildBundle } from "../appliance/releases/bundle-builder.ts";
import { buildInstallBundle } from "../installer/install-bundle-builder.ts";
import { generateDevSigningKey, loadVendorSigningKey, publicKeyPem } from "../appliance/releases/bundle-signing.ts";

const USAGE = `usage: npm run bundle -- --version X.Y.Z [--out DIR] [--minimum-version A.B.C] [--key FILE] [--images [--docker-socket PATH]]
  --version          the release's version (semver)
  --out              where plum-X.Y.Z.tar is written (default: dist/bundles)
  --minimum-version  the oldest installed version it upgrades from (default: major.minor.0 of package.json's version)
  --key              the vendor's ed25519 signing key, PEM PKCS#8, mode 0600 (or PLUM_VENDOR_SIGNING_KEY_FILE);
                     without either, a development key in .bundle-keys/ signs it
  --images           also build the release's container image (plum-product:X.Y.Z) with the local Docker engine and
                     ship it as image.tar, its sha256 and id in the signed manifest (no registry, no base image)
  --docker-socket    the engine's socket for --images (default: DOCKER_HOST=unix://…, else /var/run/docker.sock)
                     with --images, the agent's image plum-appliance:X.Y.Z is also saved as
                     plum-appliance-X.Y.Z.images.tar next to the bundle (docker load -i it on the Docker host)
  --agent            carry a new agent too: the embedded PostgreSQL binaries in app.tgz and the Node runtime this
                     build runs on as node.tgz; \`plumctl upgrade start\` of it replaces the installed agent
  --install          build plum-install-X.Y.Z.tar instead: the offline installer for a Debian 12 host (the appliance,
                     its Node runtime and the Debian packages it needs, fetched now with apt-get download; signed)`;

const DEV_KEY = path.join(APP_ROOT, ".bundle-keys", "dev-vendor.key");

function signingKeyFile(given: string | undefined): { file: string; dev: boolean } {
  const file = given ?? process.env.PLUM_VENDOR_SIGNING_KEY_FILE;
  if (file) return { file: path.resolve(file), dev: false };
  if (!existsSync(DEV_KEY)) generateDevSigningKey(DEV_KEY);
  return { file: DEV_KEY, dev: true };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      version: { type: "string" },
      out: { type: "string" },
      "minimum-version": { type: "string" },
      key: { type: "string" },
      images: { type: "boolean" },
      "docker-socket": { type: "string" },
      install: { type: "boolean" },
      agent: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return void process.stdout.write(USAGE + "\n");
  if (!values.version) throw new PlumError("--version is required", { hint: USAGE });
  if (values["docker-socket"] && !values.images) throw new PlumError("--docker-socket is for --images", { hint: USAGE });
  const { file: keyFile, dev } = signingKeyFile(values.key);
  const signingKey = loadVendorSigningKey(keyFile);
  if (dev) {
    process.stdout.write(
      `signing with the development key ${path.relative(process.cwd(), keyFile)}; its public key:\n${publicKeyPem(createPublicKey(signingKey))}`,
    );
    process.stdout.write("pin it on the appliance as releases.vendorPublicKey in plum.yaml (or PLUM_VENDOR_PUBLIC_KEY) to import bundles it signed\n");
  }
  if (values.install) {
    if (values.images || values["minimum-version"])
      throw new PlumError("--install builds the install bundle: --images and --minimum-version are for release bundles", { hint: USAGE });
    const built = await buildInstallBundle({
      version: values.version,
      outDir: path.resolve(values.out ?? path.join(APP_ROOT, "dist", "bundles")),
      signingKey,
      debCache: path.join(APP_ROOT, ".bundle-cache", "debs"),
    });
    const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
    process.stdout.write(
      `${built.file}\n` +
        `  ${mib(built.bytes)} MiB: plum ${built.manifest.version} (schema ${built.manifest.schemaVersion}), node ${built.manifest.node}, ${built.manifest.packages.length} Debian packages\n` +
        `  vendor key fingerprint (publish it with the release): ${built.fingerprint}\n` +
        `  on the host: tar -xf ${path.basename(built.file)} install.sh && sudo sh install.sh --fingerprint ${built.fingerprint}\n` +
        `  built in ${(built.timings.totalMs / 1000).toFixed(1)} s\n`,
    );
    return;
  }
  const built = await buildBundle({
    version: values.version,
    minimumVersion: values["minimum-version"],
    outDir: path.resolve(values.out ?? path.join(APP_ROOT, "dist", "bundles")),
    signingKey,
    images: values.images,
    dockerSocket: values["docker-socket"],
    agent: values.agent,
  });
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  const s = (ms: number) => (ms / 1000).toFixed(1);
  process.stdout.write(
    `${built.file}\n` +
      `  version ${built.manifest.version} (upgrades from ${built.manifest.minimumVersion}), schema ${built.manifest.schemaVersion}\n` +
      `  app.tgz ${mib(built.appBytes)} MiB, sha256 ${built.manifest.artefacts[0].sha256}\n` +
      (built.manifest.image
        ? `  image.tar ${mib(built.imageBytes ?? 0)} MiB, sha256 ${built.manifest.artefacts.find((a) => a.name === "image.tar")?.sha256}: ${built.manifest.image.tag} ${built.manifest.image.id}\n`
        : "") +
      (built.manifest.agent ? `  node.tgz: a new agent, on Node ${built.manifest.agent.nodeVersion}\n` : "") +
      `  built in ${s(built.timings.totalMs)} s (compile ${s(built.timings.compileMs)} s, pack ${s(built.timings.packMs)} s${built.timings.imageMs !== undefined ? `, image ${s(built.timings.imageMs)} s` : ""})\n`,
  );
  if (values.images) {
    const images = await writeAgentImages(built.file, built.manifest.version, { dockerSocket: values["docker-socket"] });
    process.stdout.write(
      `${images.file}\n  ${images.tag}: ${mib(images.size)} MiB in the engine, ${mib(images.fileBytes)} MiB saved, built in ${(images.buildMs / 1000).toFixed(1)} s\n` +
        `  on the Docker host: docker load -i ${path.basename(images.file)}\n`,
    );
  }
}

try {
  await main();
} catch (err) {
  process.stderr.write(describeError(err) + "\n");
  process.exitCode = 1;
}
