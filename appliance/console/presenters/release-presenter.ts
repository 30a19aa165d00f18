import semver from "semver";
import type { ReleaseChanges } from "../../releases/bundle-manifest.ts";
import { changeGroups, changesNote } from "../../releases/release-changes.ts";
import type { ReleaseInfo } from "../../releases/release-store.ts";

function presentChanges(version: string, changes: ReleaseChanges | undefined) {
  if (!changes) return undefined;
  const groups = changeGroups(changes.text);
  return { note: changesNote(version, changes), unreleased: changes.section !== version, groups, empty: groups.length === 0 };
}

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
    changes: presentChanges(release.version, m.changes),
  };
}
