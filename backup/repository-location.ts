import path from "node:path";
import type { PlumConfig } from "../lib/config.ts";

/** Where the primary repository is: backup.primary, else PLUM_HOME/backups/primary. */
export function primaryRepositoryLocation(config: PlumConfig): string {
  return config.backup.primary ?? path.join(config.home, "backups", "primary");
}

/** The folder of a repository on this host's filesystem (a path, or `local:` one); undefined for sftp:, rest:, s3: … */
export function localFolderOf(location: string): string | undefined {
  if (location.startsWith("local:")) return location.slice("local:".length);
  return /^[a-z][a-z0-9+]*:/i.test(location) ? undefined : location;
}
