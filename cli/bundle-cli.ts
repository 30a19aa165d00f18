// `npm run bundle -- --version X.Y.Z [--out DIR] [--minimum-version A.B.C] [--key FILE] [--images]`: build and sign a release bundle.
import { createPublicKey } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { describeError, PlumError } from "../lib/errors.ts";
import { APP_ROOT } from "../lib/paths.ts";
import { writeAgentImages } from "../appliance/releases/agent-images-output.ts";
import { buildBundle } from "../appliance/releases/bundle-builder.ts";
import { generateDevSigningKey, loadVendorSigningKey, publicKeyPem } from "../appliance/releases/bundle-signing.ts";

const USAGE = `usage: npm run bundle -- --version X.Y.Z [--out DIR] [--minimum-version A.B.C] [--key FILE] [--images]
  --version          the release's version (semver)
  --out              where plum-X.Y.Z.tar is written (default: dist/bundles)
  --minimum-version  the oldest installed version it upgrades from (default: major.minor.0 of package.json's version)
  --key              the vendor's ed25519 signing key, PEM PKCS#8, mode 0600 (or PLUM_VENDOR_SIGNING_KEY_FILE);
                     without either, a development key in .bundle-keys/ signs it
  --images           also build the container images (a Docker engine on DOCKER_HOST or /var/run/docker.sock):
                     the agent's plum-appliance:X.Y.Z, saved as plum-appliance-X.Y.Z.images.tar next to the bundle`;

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
      help: { type: "boolean" },
    },
  });
  if (values.help) return void process.stdout.write(USAGE + "\n");
  if (!values.version) throw new PlumError("--version is required", { hint: USAGE });
  const { file: keyFile, dev } = signingKeyFile(values.key);
  const signingKey = loadVendorSigningKey(keyFile);
  if (dev) {
    process.stdout.write(
      `signing with the development key ${path.relative(process.cwd(), keyFile)}; its public key:\n${publicKeyPem(createPublicKey(signingKey))}`,
    );
    process.stdout.write("pin it on the appliance as releases.vendorPublicKey in plum.yaml (or PLUM_VENDOR_PUBLIC_KEY) to import bundles it signed\n");
  }
  const built = await buildBundle({
    version: values.version,
    minimumVersion: values["minimum-version"],
    outDir: path.resolve(values.out ?? path.join(APP_ROOT, "dist", "bundles")),
    signingKey,
  });
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  process.stdout.write(
    `${built.file}\n` +
      `  version ${built.manifest.version} (upgrades from ${built.manifest.minimumVersion}), schema ${built.manifest.schemaVersion}\n` +
      `  app.tgz ${mib(built.appBytes)} MiB, sha256 ${built.manifest.artefacts[0].sha256}\n` +
      `  built in ${(built.timings.totalMs / 1000).toFixed(1)} s (compile ${(built.timings.compileMs / 1000).toFixed(1)} s, pack ${(built.timings.packMs / 1000).toFixed(1)} s)\n`,
  );
  if (values.images) {
    const images = await writeAgentImages(built.file, built.manifest.version);
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
