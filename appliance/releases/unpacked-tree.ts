import { lstat, readdir, readlink, realpath } from "node:fs/promises";
import path from "node:path";

/** One entry of an unpacked tree that resolves outside it, and where it leads. */
export interface EscapingEntry {
  rel: string;
  leadsTo: string;
}

const inside = (root: string, p: string) => p === root || p.startsWith(root + path.sep);

/**
 * The entries under `dir` that resolve (through any symlinks on the way) outside it: the check after
 * unpacking, which does not trust the listing's reading of the archive. A symlink to nothing cannot be
 * resolved; it passes only when its target climbs no `..` (so, with every other link inside, it stays inside).
 * Asynchronous, so a release of thousands of files does not hold up the agent's proxy while it is walked.
 */
export async function escapingEntries(dir: string): Promise<EscapingEntry[]> {
  const root = await realpath(dir);
  const found: EscapingEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = await readdir(path.join(root, rel));
    for (const name of names) {
      const childRel = rel === "" ? name : path.join(rel, name);
      const abs = path.join(root, childRel);
      const st = await lstat(abs);
      let leadsTo: string;
      try {
        leadsTo = await realpath(abs);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT" || !st.isSymbolicLink()) throw err;
        const target = await readlink(abs);
        const climbs = path.isAbsolute(target) || target.split("/").includes("..");
        if (climbs) found.push({ rel: childRel, leadsTo: `${target} (a symlink to nothing that climbs out of its folder)` });
        continue;
      }
      if (!inside(root, leadsTo)) {
        found.push({ rel: childRel, leadsTo });
        continue;
      }
      // A folder is walked only where it really is: a link to a folder inside is checked as a link, not entered.
      if (st.isDirectory()) await walk(childRel);
    }
  };
  await walk("");
  return found;
}
