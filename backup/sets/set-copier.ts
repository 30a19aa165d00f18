import { Op, type WhereOptions } from "sequelize";
import { PlumError } from "../../lib/errors.ts";
import type { BackupContext } from "../backup-context.ts";
import type { BackupSet } from "../backup-catalogue.ts";
import { SET_PARTS, type SetPart } from "../backup-types.ts";
import { setSnapshotsIn } from "../restore/scratch-restorer.ts";
import { displayLocation } from "../restic/restic-errors.ts";
import { Restic } from "../restic/restic.ts";

/**
 * Copy backup sets to the second site: every succeeded set not copied yet (or the one named). The secondary
 * is made on first use with the primary's chunker parameters, so copies deduplicate there as they do in the
 * primary. Copies get ids of their own: they are found again by their set and part tags, checked against
 * the snapshots they came from, and recorded in the catalogue. Evidence `copy` per set.
 */
export async function setCopier(ctx: BackupContext, opts: { setId?: string; restic?: Restic; onProgress?: (line: string) => void } = {}): Promise<BackupSet[]> {
  const { primary, secondary } = ctx.repos;
  if (!secondary) {
    throw new PlumError("no secondary repository is configured: there is no second site to copy to", {
      hint: "set backup.secondary in plum.yaml (or PLUM_BACKUP_SECONDARY) to the second site's restic repository",
    });
  }
  const restic = opts.restic ?? new Restic({ log: ctx.log });
  const say = opts.onProgress ?? (() => undefined);
  const where: WhereOptions<BackupSet> = opts.setId ? { id: opts.setId } : { status: "succeeded", copiedAt: { [Op.is]: null } };
  const sets = await ctx.sets.findAll({ where, order: [["startedAt", "ASC"]] });
  if (opts.setId && sets[0]?.status !== "succeeded") {
    throw new PlumError(`set ${opts.setId} ${sets[0] ? `is ${sets[0].status}` : "does not exist"}: only a succeeded set is copied`, {
      hint: "list the sets with `plumctl backup list`",
    });
  }
  if (sets.length === 0) return [];

  if (await restic.isInitialised(secondary)) await restic.unlock(secondary);
  else if (await ctx.sets.count({ where: { copiedAt: { [Op.not]: null } } })) {
    // Sets were copied there before: an unmounted disk or a wrong path, not a second site to start afresh.
    throw new PlumError(`the secondary repository ${displayLocation(secondary.location)} does not exist, yet sets were copied to it before`, {
      hint: "check that the second site is reachable and that backup.secondary points at it",
    });
  } else {
    say(`initialising the secondary repository ${displayLocation(secondary.location)} with the primary's chunker parameters`);
    await restic.init(secondary, { fromRepo: primary, copyChunkerParams: true });
  }
  for (const set of sets) {
    const started = Date.now();
    try {
      const originals = SET_PARTS.map((part) => set.primarySnapshots[part]);
      if (originals.some((id) => !id)) throw new PlumError(`set ${set.id} lacks a primary snapshot of some part: ${JSON.stringify(set.primarySnapshots)}`);
      say(`copying set ${set.id} to the secondary repository`);
      await restic.copy(primary, secondary, originals as string[]);
      const copies = await setSnapshotsIn(restic, secondary, set.id);
      const secondarySnapshots = {} as Record<SetPart, string>;
      for (const part of SET_PARTS) {
        if (copies[part].original && copies[part].original !== set.primarySnapshots[part]) {
          throw new PlumError(
            `the ${part} snapshot of set ${set.id} in the secondary (${copies[part].shortId}) is a copy of ${copies[part].original}, not of ${set.primarySnapshots[part]}`,
          );
        }
        secondarySnapshots[part] = copies[part].id;
      }
      await set.update({ secondarySnapshots, copiedAt: new Date() });
      await ctx.evidence.record({
        kind: "copy",
        outcome: "success",
        setId: set.id,
        repository: "secondary",
        detail: { from: set.primarySnapshots, to: secondarySnapshots, seconds: (Date.now() - started) / 1000 },
      });
    } catch (err) {
      await ctx.evidence.record({
        kind: "copy",
        outcome: "failure",
        setId: set.id,
        repository: "secondary",
        detail: { from: set.primarySnapshots, error: (err as Error).message },
      });
      throw err;
    }
  }
  return sets;
}
