import { PlumError } from "../../lib/errors.ts";
import type { BackupContext } from "../backup-context.ts";
import type { RepositoryRole } from "../backup-types.ts";
import type { CheckResult } from "../restic/restic-output.ts";
import { Restic } from "../restic/restic.ts";

export const CHECK_SUBSETS = 7;

/** Which seventh of the data packs a day reads ("1/7" … "7/7" by UTC day): a daily check reads them all in a week. */
export function checkSubsetFor(day: Date): string {
  return `${(Math.floor(day.getTime() / 86_400_000) % CHECK_SUBSETS) + 1}/${CHECK_SUBSETS}`;
}

/**
 * `restic check --read-data-subset n/7` on one repository, n rotating by day: the structure every time, and
 * over a week every data pack read back and verified. Evidence `check` with the subset and the outcome;
 * errors found are thrown after they are recorded.
 */
export async function repositoryChecker(ctx: BackupContext, role: RepositoryRole, opts: { now?: Date; restic?: Restic } = {}): Promise<CheckResult> {
  const repo = ctx.repos[role];
  if (!repo) throw new PlumError(`no ${role} repository is configured`, { hint: "set backup.secondary in plum.yaml (or PLUM_BACKUP_SECONDARY)" });
  const restic = opts.restic ?? new Restic({ log: ctx.log });
  const subset = checkSubsetFor(opts.now ?? new Date());
  const started = Date.now();
  let result: CheckResult;
  try {
    await restic.unlock(repo); // check needs an exclusive lock: a killed restic's stale one would refuse it
    result = await restic.check(repo, { readDataSubset: subset });
  } catch (err) {
    await ctx.evidence.record({ kind: "check", outcome: "failure", repository: role, detail: { subset, error: (err as Error).message } });
    throw err;
  }
  const seconds = (Date.now() - started) / 1000;
  await ctx.evidence.record({
    kind: "check",
    outcome: result.ok ? "success" : "failure",
    repository: role,
    detail: { subset, errorsFound: !result.ok, seconds, output: result.output.slice(-20) },
  });
  if (!result.ok) {
    throw new PlumError(`restic check of the ${role} repository found errors (data subset ${subset})`, {
      detail: result.output.join("\n"),
      hint: "do not forget or prune anything; copy the sets that are still good from the other repository and see `restic check` in the restic manual",
    });
  }
  return result;
}
