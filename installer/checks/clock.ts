import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

export const clock: PreflightCheck = {
  id: "clock",
  title: "the clock is not behind the release's build time (backup ages, evidence and sessions depend on it)",
  categories: ["install"],
  async run({ install }) {
    const now = new Date();
    if (install && now.getTime() < Date.parse(install.builtAt)) {
      throw new PlumError(`the clock says ${now.toISOString()}, before this release was built (${install.builtAt})`, {
        hint: "set the clock (timedatectl set-ntp true, or date -s) and install again: evidence and backup ages would be wrong",
      });
    }
    return now.toISOString();
  },
};
