import { totalmem } from "node:os";
import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

const GiB = 2 ** 30;
/** The agent, PostgreSQL, the production instance and, during an upgrade, a staging instance beside it. */
const NEEDED_GIB = 2;

export const memory: PreflightCheck = {
  id: "memory",
  title: `at least ${NEEDED_GIB} GiB of memory (agent, PostgreSQL, production and staging instances)`,
  categories: ["install", "doctor"],
  async run() {
    const total = totalmem();
    if (total < NEEDED_GIB * GiB * 0.95)
      throw new PlumError(`${(total / GiB).toFixed(1)} GiB of memory, ${NEEDED_GIB} GiB needed`, {
        hint: "give the host more memory: an upgrade runs a staging instance beside production",
      });
    return `${(total / GiB).toFixed(1)} GiB`;
  },
};
