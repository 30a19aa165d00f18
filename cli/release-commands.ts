import path from "node:path";
import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { APP_VERSION } from "../lib/version.ts";
import { agentLink, callAgent } from "../appliance/control/control-client.ts";
import { withOpsDatabase } from "../appliance/ops-database.ts";
import type { BundleManifest } from "../appliance/releases/bundle-manifest.ts";
import { releaseImporter, releaseStoreFor } from "../appliance/releases/release-importer.ts";
import { UpgradeJournal } from "../appliance/upgrade/upgrade-journal.ts";
import { PlumError } from "../lib/errors.ts";
import { releaseDetail, releaseList } from "./release-format.ts";

/** Verifying and unpacking a large bundle on a slow disk takes minutes. */
const IMPORT_TIMEOUT_MS = 30 * 60_000;

export function register(program: Command): void {
  const release = program.command("release").description("release bundles on this appliance: import (verified), list and show what each changes");

  release
    .command("import")
    .description("verify a release bundle (vendor signature, checksums, upgrade path, free disk) and unpack it; a bundle that fails changes nothing")
    .argument("<file>", "the bundle, plum-VERSION.tar")
    .action(async (file: string) => {
      const config = loadConfig();
      const bundle = path.resolve(file);
      // A running agent imports with its own store and the key it has pinned: what it imports, its upgrade accepts.
      const link = agentLink(config.home);
      const manifest = link
        ? await callAgent<BundleManifest>(link, "POST", "/releases/import", { file: bundle }, IMPORT_TIMEOUT_MS)
        : await withOpsDatabase(config, async (db) =>
            releaseImporter({
              store: releaseStoreFor(config),
              audit: db.audit,
              actor: "cli",
              file: bundle,
              productionVersion: (await new UpgradeJournal(db.sequelize).productionVersion()) ?? APP_VERSION,
            }),
          );
      process.stdout.write(
        `imported release ${manifest.version} (schema ${manifest.schemaVersion}, upgrades from ${manifest.minimumVersion}); start it with \`plumctl upgrade start ${manifest.version}\`\n`,
      );
    });

  release
    .command("list")
    .description("the releases this appliance can run, newest first, with the first lines of what each changes")
    .option("--changes", "print every release's changelog section in full")
    .option("--json", "print JSON")
    .action((opts: { changes?: boolean; json?: boolean }) => {
      const releases = releaseStoreFor(loadConfig()).list();
      process.stdout.write(opts.json ? JSON.stringify(releases, null, 2) + "\n" : releaseList(releases, opts));
    });

  release
    .command("show")
    .description("one release: its manifest's facts and what it changes (its changelog section, in full)")
    .argument("<version>", "a version that `plumctl release list` shows")
    .option("--json", "print JSON")
    .action((version: string, opts: { json?: boolean }) => {
      const releases = releaseStoreFor(loadConfig()).list();
      const found = releases.find((r) => r.version === version);
      if (!found)
        throw new PlumError(`release ${version} is not on this appliance (it has ${releases.map((r) => r.version).join(", ")})`, {
          hint: `import its bundle first: \`plumctl release import plum-${version}.tar\``,
        });
      process.stdout.write(opts.json ? JSON.stringify(found, null, 2) + "\n" : releaseDetail(found));
    });
}
