import path from "node:path";
import type { PlumConfig } from "../../lib/config.ts";
import { PlumError } from "../../lib/errors.ts";
import { homeLayout } from "../../lib/paths.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { BundleManifest } from "./bundle-manifest.ts";
import { BundleRejected } from "./bundle-importer.ts";
import type { ReleaseImageEngine } from "./release-images.ts";
import { ReleaseStore } from "./release-store.ts";

/**
 * The image engine of a config whose runtime is docker (`runtime.kind: docker`, `runtime.docker.socket`,
 * `runtime.docker.imageRepository`); undefined for the process runtime.
 */
export function releaseImageEngine(config: PlumConfig): ReleaseImageEngine | undefined {
  const runtime = config.runtime as Partial<PlumConfig["runtime"]> | undefined;
  if (runtime?.kind !== "docker") return undefined;
  return {
    ...(runtime.docker?.socket && { socketPath: runtime.docker.socket }),
    ...(runtime.docker?.imageRepository && { repository: runtime.docker.imageRepository }),
  };
}

/**
 * This appliance's release store, reading the pinned vendor key and `keep` from the live config at each
 * use: a `config reload` that pins a new key is seen by the next import.
 */
export function releaseStoreFor(config: PlumConfig): ReleaseStore {
  return new ReleaseStore({
    releasesDir: homeLayout(config.home).releasesDir,
    get keep() {
      return config.releases.keep;
    },
    get vendorPublicKey() {
      return config.releases.vendorPublicKey;
    },
    get images() {
      return releaseImageEngine(config);
    },
  });
}

/**
 * Verify and unpack a bundle file into the store, auditing the import or the refusal (with the check that
 * refused it). The upgrade path starts from `productionVersion`, which an earlier upgrade may have changed.
 */
export async function releaseImporter(props: {
  store: ReleaseStore;
  audit: AuditLog;
  actor: string;
  file: string;
  productionVersion: string;
}): Promise<BundleManifest> {
  const { store, audit, actor, file } = props;
  let manifest: BundleManifest;
  try {
    manifest = await store.import(file, { currentVersion: props.productionVersion });
  } catch (err) {
    if (!(err instanceof BundleRejected)) throw err;
    await audit.append({
      actor,
      action: "release.import",
      target: path.basename(file),
      outcome: "failure",
      detail: { file, check: err.check, reason: err.message },
    });
    throw new PlumError(`release bundle refused by the ${err.check} check: ${err.message}`, { hint: err.hint, detail: err.detail });
  }
  await audit.append({
    actor,
    action: "release.import",
    target: manifest.version,
    outcome: "success",
    detail: {
      file,
      schemaVersion: manifest.schemaVersion,
      minimumVersion: manifest.minimumVersion,
      sha256: manifest.artefacts.map((a) => `${a.name}:${a.sha256}`),
      ...(manifest.image && { image: `${manifest.image.tag} ${manifest.image.id}` }),
    },
  });
  return manifest;
}
