import type { Sequelize } from "sequelize";
import type { PlumConfig } from "../../lib/config.ts";
import { APP_VERSION } from "../../lib/version.ts";
import type { ProductionRelease } from "../../backup/backup-context.ts";
import { UpgradeJournal } from "../upgrade/upgrade-journal.ts";
import { releaseStoreFor } from "./release-importer.ts";

/**
 * What production runs, read where no agent can be asked (a command on a stopped appliance): the upgrade
 * journal's pointer, or the installed release when no upgrade ever moved it. The agent asks its Production.
 */
export async function productionReleaseAtRest(config: PlumConfig, opsSequelize: Sequelize): Promise<ProductionRelease> {
  const version = (await new UpgradeJournal(opsSequelize).productionVersion()) ?? APP_VERSION;
  const store = releaseStoreFor(config);
  // A release folder removed by hand must not stop a backup: a set's schema is read from its dump's snapshot anyway.
  return { version, schemaVersion: store.has(version) ? store.manifest(version).schemaVersion : "unknown" };
}
