import { diskSpaceOf, gib, nearestExisting } from "../../lib/disk-space.ts";
import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

/** PLUM_HOME: the databases, a staging copy of them during an upgrade, local backups, two unpacked releases. */
const HOME_NEEDED_GIB = 2;

const freeBytes = (dir: string) => diskSpaceOf(nearestExisting(dir)).freeBytes;

export const diskSpace: PreflightCheck = {
  id: "disk-space",
  title: `disk space: ${HOME_NEEDED_GIB} GiB for PLUM_HOME (data, a staging copy, backups); two releases in /opt/plum when installing`,
  categories: ["install", "doctor"],
  async run({ config, install }) {
    const found: string[] = [];
    const short: string[] = [];
    const want = (dir: string, bytes: number, why: string) => {
      const free = freeBytes(dir);
      const line = `${gib(free).toFixed(1)} GiB free on ${nearestExisting(dir)}`;
      if (free < bytes) short.push(`${line}, ${gib(bytes).toFixed(1)} GiB needed for ${why}`);
      else found.push(line);
    };
    want(config.home, HOME_NEEDED_GIB * 2 ** 30, "PLUM_HOME (the databases, a staging copy of them, local backups)");
    // An upgrade unpacks the next release beside the current one before it switches.
    if (install) want(install.optDir, 2 * install.releaseBytes, `two releases of ${(install.releaseBytes / 2 ** 20).toFixed(0)} MiB`);
    if (short.length > 0) throw new PlumError(short.join("; "), { hint: "free some space, or mount a larger volume there" });
    return found.join(", ");
  },
};
