import { statfsSync } from "node:fs";

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
