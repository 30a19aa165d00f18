import semver from "semver";
import type { ReleaseInfo } from "../../releases/release-store.ts";

/** A release for the Releases page, placed against the version production serves. */
export function presentRelease(release: ReleaseInfo, production: string) {
  const m = release.manifest;
  return {
    version: release.version,
    source: release.installed ? "installed" : "imported",
    importedAt: release.importedAt,
    schemaVersion: m.schemaVersion,
    minimumVersion: m.minimumVersion,
    suites: m.suites.join(", ") || "none",
    migrations: m.migrations.length,
    production: release.version === production,
    newer: semver.gt(release.version, production),
  };
}
