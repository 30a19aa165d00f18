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

/**
 * As root, the system user `name` (created once when missing: a system user with its own group, no home, no
 * login shell) for a child that must not hold root's rights; not as root, nobody to switch to: `{}`.
 */
export async function systemUser(name: string, log: Logger, why: string): Promise<RunAs> {
  if (userInfo().uid !== 0) return {};
  try {
    return await lookup(name);
  } catch {
    log.info({ user: name }, `creating the system user "${name}" ${why}`);
    await runChild(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name], { timeoutMs: 15000 }).catch(
      () => undefined, // another start may have created it meanwhile: the lookup says
    );
    try {
      return await lookup(name);
    } catch (err) {
      throw new PlumError(`the system user "${name}" does not exist and could not be created`, {
        hint: `create it (useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ${name}) and start again`,
        cause: err,
      });
    }
  }
}
