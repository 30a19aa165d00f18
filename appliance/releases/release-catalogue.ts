import { readFileSync } from "node:fs";
import path from "node:path";
import semver from "semver";
import type { PlumConfig } from "../../lib/config.ts";
import { PlumError } from "../../lib/errors.ts";
import { APP_VERSION } from "../../lib/version.ts";
import type { ReleaseCatalogue } from "../upgrade/upgrade-host.ts";
import { parseVendorPublicKey, verifySignature } from "./bundle-signing.ts";
import type { ReleaseStore } from "./release-store.ts";

/** The releases as the upgrade manager sees them, over the store, with the re-check an upgrade's verify step runs. */
export function releaseCatalogueFor(store: ReleaseStore, config: PlumConfig): ReleaseCatalogue {
  return {
    ref: (version) => store.ref(version),
    facts: (version) => {
      const m = store.manifest(version);
      return { version: m.version, schemaVersion: m.schemaVersion, minimumVersion: m.minimumVersion, suites: m.suites, dataChanges: m.dataChanges };
    },
    async recheck(version, currentVersion) {
      const checks: string[] = [];
      const manifest = store.manifest(version);
      if (version !== APP_VERSION) {
        if (!config.releases.vendorPublicKey)
          throw new PlumError("no vendor public key is pinned (releases.vendorPublicKey)", {
            hint: "set it from the vendor's release notes, then start the upgrade again",
          });
        const dir = store.ref(version).dir;
        const bytes = readFileSync(path.join(dir, "manifest.json"));
        if (!verifySignature(bytes, readFileSync(path.join(dir, "manifest.sig"), "utf8"), parseVendorPublicKey(config.releases.vendorPublicKey))) {
          throw new PlumError(`the stored manifest of ${version} no longer matches the vendor's signature`, {
            hint: "the release folder was changed after import: remove it and import the bundle again",
          });
        }
        checks.push("signature: the stored manifest is signed by the pinned vendor key");
        // On docker, the image must be in the engine before staging starts: one imported under the process
        // runtime (or an engine emptied since) is loaded now from the image.tar kept in its folder, checked again.
        if (store.loadsImages) {
          const tag = await store.ensureImage(version);
          if (tag) checks.push(`image: ${tag} in the engine, with the id its manifest signs`);
        }
      }
      if (!semver.gte(currentVersion, manifest.minimumVersion)) {
        throw new PlumError(`${version} upgrades from ${manifest.minimumVersion} or newer; production runs ${currentVersion}`, {
          hint: `upgrade to an intermediate release first`,
        });
      }
      checks.push(`upgrade path: ${currentVersion} ≥ minimum ${manifest.minimumVersion}`);
      return checks;
    },
    prune: (protect) => store.prune(protect),
  };
}
