import type { PlumConfig } from "../../lib/config.ts";
import { diskSpaceOf, nearestExisting } from "../../lib/disk-space.ts";
import { localFolderOf, primaryRepositoryLocation } from "../../backup/repository-location.ts";
import type { DiskFact } from "./status-report.ts";

/**
 * Disk left where the appliance writes: PLUM_HOME (databases, releases, staging copies) and, when it is a
 * folder here, the primary repository (a repository on another host is that host's to watch).
 */
export function diskFacts(config: PlumConfig): DiskFact[] {
  const facts: DiskFact[] = [{ what: "home", ...diskSpaceOf(config.home) }];
  const folder = localFolderOf(primaryRepositoryLocation(config));
  if (folder) facts.push({ what: "primary repository", ...diskSpaceOf(nearestExisting(folder)), path: folder });
  return facts;
}
