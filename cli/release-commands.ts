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

function storeFor(config: PlumConfig): ReleaseStore {
  return new ReleaseStore({ releasesDir: homeLayout(config.home).releasesDir, keep: config.releases.keep, vendorPublicKey: config.releases.vendorPublicKey });
}

export function registerReleaseCommands(program: Command): void {
  const release = program.command("release").description("release bundles on this appliance: import (verified) and list");

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
    .description("the releases this appliance can run, newest first")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      const releases = storeFor(loadConfig()).list();
      if (opts.json) {
        process.stdout.write(JSON.stringify(releases, null, 2) + "\n");
        return;
      }
      const rows = releases.map((r) => [
        r.version,
        r.manifest.schemaVersion,
        r.installed ? "-" : r.manifest.minimumVersion,
        r.installed ? "installed" : r.importedAt!.toISOString(),
      ]);
      const table = [["VERSION", "SCHEMA", "UPGRADES FROM", "IMPORTED"], ...rows];
      const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
      for (const row of table)
        process.stdout.write(
          row
            .map((cell, i) => cell.padEnd(widths[i]))
            .join("  ")
            .trimEnd() + "\n",
        );
    });
}
