import { userInfo } from "node:os";
import { runChild } from "./child-process.ts";
import { PlumError } from "./errors.ts";
import type { Logger } from "./logger.ts";

/** Who a child runs as (spawn's uid/gid); empty: as the agent itself. */
export interface RunAs {
  uid?: number;
  gid?: number;
}

async function lookup(name: string): Promise<RunAs> {
  const { stdout: u } = await runChild(["id", "-u", name], { timeoutMs: 5000 });
  const { stdout: g } = await runChild(["id", "-g", name], { timeoutMs: 5000 });
  return { uid: Number(u.trim()), gid: Number(g.trim()) };
}

/** How a system user of the appliance is made: its own group, no home, no login shell (Debian's way for daemons). */
export const USERADD_ARGS = (name: string) => [
  "useradd",
  "--system",
  "--user-group",
  "--no-create-home",
  "--home-dir",
  "/nonexistent",
  "--shell",
  "/usr/sbin/nologin",
  name,
];

/** The system user `name`, created when missing; says whether this call created it (install's undo removes only those). */
export async function ensureSystemUser(name: string): Promise<{ runAs: RunAs; created: boolean }> {
  try {
    return { runAs: await lookup(name), created: false };
  } catch {
    // missing: made below
  }
  const made = await runChild(USERADD_ARGS(name), { timeoutMs: 15000, okCodes: [0, 9] }).catch(() => undefined); // 9: made meanwhile by another start
  try {
    return { runAs: await lookup(name), created: made?.exitCode === 0 };
  } catch (err) {
    throw new PlumError(`the system user "${name}" does not exist and could not be created`, {
      hint: `create it (${USERADD_ARGS(name).join(" ")}) and start again`,
      cause: err,
    });
  }
}

/**
 * As root, the system user `name` (created once when missing) for a child that must not hold root's rights;
 * not as root, nobody to switch to: `{}`.
 */
export async function systemUser(name: string, log: Logger, why: string): Promise<RunAs> {
  if (userInfo().uid !== 0) return {};
  const { runAs, created } = await ensureSystemUser(name);
  if (created) log.info({ user: name }, `created the system user "${name}" ${why}`);
  return runAs;
}
