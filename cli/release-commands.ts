import path from "node:path";
import type { Command } from "commander";
import { loadConfig, type PlumConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { homeLayout } from "../lib/paths.ts";
import { APP_VERSION } from "../lib/version.ts";
import { openOpsDatabase } from "../appliance/ops-database.ts";
import { UpgradeJournal } from "../appliance/upgrade/upgrade-journal.ts";
import { BundleRejected } from "../appliance/releases/bundle-importer.ts";
import { ReleaseStore } from "../appliance/releases/release-store.ts";
import { releaseDetail, releaseList } from "./release-format.ts";

function storeFor(config: PlumConfig): ReleaseStore {
  return new ReleaseStore({ releasesDir: homeLayout(config.home).releasesDir, keep: config.releases.keep, vendorPublicKey: config.releases.vendorPublicKey });
}

export function registerReleaseCommands(program: Command): void {
  const release = program.command("release").description("release bundles on this appliance: import (verified), list and show what each changes");

  release
    .command("import")
    .description("verify a release bundle (vendor signature, checksums, upgrade path, free disk) and unpack it; a bundle that fails changes nothing")
    .argument("<file>", "the bundle, plum-VERSION.tar")
    .action(async (file: string) => {
      const config = loadConfig();
      // Opened first: an import that could not be audited does not happen.
      const db = await openOpsDatabase(config);
      try {
        const bundle = path.resolve(file);
        let manifest;
        try {
          // The upgrade path starts from what production runs now, which an earlier upgrade may have changed.
          const production = (await new UpgradeJournal(db.sequelize).productionVersion()) ?? APP_VERSION;
          manifest = await storeFor(config).import(bundle, { currentVersion: production });
        } catch (err) {
          if (!(err instanceof BundleRejected)) throw err;
          await db.audit.append({
            actor: "cli",
            action: "release.import",
            target: path.basename(bundle),
            outcome: "failure",
            detail: { file: bundle, check: err.check, reason: err.message },
          });
          throw new PlumError(`release bundle refused by the ${err.check} check: ${err.message}`, { hint: err.hint, detail: err.detail });
        }
        await db.audit.append({
          actor: "cli",
          action: "release.import",
          target: manifest.version,
          outcome: "success",
          detail: {
            file: bundle,
            schemaVersion: manifest.schemaVersion,
            minimumVersion: manifest.minimumVersion,
            sha256: manifest.artefacts.map((a) => `${a.name}:${a.sha256}`),
          },
        });
        process.stdout.write(
          `imported release ${manifest.version} (schema ${manifest.schemaVersion}, upgrades from ${manifest.minimumVersion}); start it with \`plumctl upgrade start ${manifest.version}\`\n`,
        );
      } finally {
        await db.close();
      }
    });

  release
    .command("list")
    .description("the releases this appliance can run, newest first, with the first lines of what each changes")
    .option("--changes", "print every release's changelog section in full")
    .option("--json", "print JSON")
    .action((opts: { changes?: boolean; json?: boolean }) => {
      const releases = storeFor(loadConfig()).list();
      process.stdout.write(opts.json ? JSON.stringify(releases, null, 2) + "\n" : releaseList(releases, opts));
    });

  release
    .command("show")
    .description("one release: its manifest's facts and what it changes (its changelog section, in full)")
    .argument("<version>", "a version that `plumctl release list` shows")
    .option("--json", "print JSON")
    .action((version: string, opts: { json?: boolean }) => {
      const releases = storeFor(loadConfig()).list();
      const found = releases.find((r) => r.version === version);
      if (!found)
        throw new PlumError(`release ${version} is not on this appliance (it has ${releases.map((r) => r.version).join(", ")})`, {
          hint: `import its bundle first: \`plumctl release import plum-${version}.tar\``,
        });
      process.stdout.write(opts.json ? JSON.stringify(found, null, 2) + "\n" : releaseDetail(found));
    });
}
