import { existsSync, statfsSync } from "node:fs";
import path from "node:path";

/** Free and total space of the filesystem holding a path, as an unprivileged process may use it (statfs bavail). */
export interface DiskSpace {
  path: string;
  freeBytes: number;
  totalBytes: number;
}

export function diskSpaceOf(dir: string): DiskSpace {
  const st = statfsSync(dir);
  return { path: dir, freeBytes: st.bavail * st.bsize, totalBytes: st.blocks * st.bsize };
}

export const gib = (bytes: number) => bytes / 2 ** 30;

/** `dir`, or its nearest ancestor that exists: where a folder still to be made (a repository, PLUM_HOME) takes its space from. */
export function nearestExisting(dir: string): string {
  let at = path.resolve(dir);
  while (!existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}
