import { diskSpaceOf, gib } from "../../lib/disk-space.ts";
import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

const NEEDED_GIB = 2;

export const diskSpace: PreflightCheck = {
  id: "disk-space",
  title: `at least ${NEEDED_GIB} GiB free for PLUM_HOME`,
  categories: ["install", "doctor"],
  async run({ config }) {
    const freeGiB = gib(diskSpaceOf(config.home).freeBytes);
    if (freeGiB < NEEDED_GIB) {
      throw new PlumError(`${freeGiB.toFixed(1)} GiB free on ${config.home}, ${NEEDED_GIB} GiB needed`, {
        hint: "free some space or set PLUM_HOME to a larger volume",
      });
    }
    return `${freeGiB.toFixed(1)} GiB free on ${config.home}`;
  },
};
