import type { BackupContext } from "../backup-context.ts";
import type { BackupOperations } from "./backup-operations.ts";
import { restoreDrill } from "../drills/restore-drill.ts";
import { copyRestorer } from "../restore/copy-restorer.ts";
import { setRestorer, type ProductInstances } from "../restore/set-restorer.ts";
import { Restic } from "../restic/restic.ts";
import { backupSetCreator } from "../sets/backup-set-creator.ts";
import { repositoryChecker } from "../sets/repository-checker.ts";
import { retentionApplier } from "../sets/retention.ts";
import { setCopier } from "../sets/set-copier.ts";
import { holdBackupWork } from "../work-lock.ts";

/** Without an agent nothing serves: there is no instance to stop or start around a restore's swap. */
const NO_INSTANCES: ProductInstances = { stopProduct: async () => undefined, startProduct: async () => undefined };

/**
 * The backup agent's operations over a context, each reporting progress lines: sets (copied to the second site
 * when one is configured), copies, checks, retention, restores and drills.
 */
export function backupOperationsFor(ctx: BackupContext, instances: ProductInstances = NO_INSTANCES): BackupOperations {
  const restic = new Restic({ log: ctx.log });
  let lastPercent = -10;
  return {
    async backup(kind, startedBy, progress) {
      progress(`backup set (${kind}) into ${ctx.repos.primary.role}`);
      // Held while the set is made: a recovery in another process never takes it for one a crash left running.
      const work = await holdBackupWork(ctx.pg, ctx.databases.ops);
      const set = await backupSetCreator({
        ctx,
        kind,
        startedBy,
        restic,
        onProgress: ({ part, progress: p }) => {
          const percent = Math.floor(p.percentDone * 100);
          if (percent >= lastPercent + 10 || percent === 100) {
            lastPercent = percent === 100 ? -10 : percent;
            progress(`${part}: ${percent} %${p.bytesDone ? ` (${(p.bytesDone / 2 ** 20).toFixed(1)} MiB)` : ""}`);
          }
        },
      }).finally(() => work.release());
      if (set.status !== "succeeded") throw new Error(`set ${set.id} failed: ${set.error ?? "see the evidence log"}`);
      progress(`set ${set.id} succeeded: ${Object.keys(set.primarySnapshots).length} snapshots`);
      if (ctx.repos.secondary) {
        progress("copying it to the secondary repository");
        await setCopier(ctx, { setId: set.id, restic, onProgress: progress });
        progress("copied");
      }
      return set;
    },
    async copy(_startedBy, progress) {
      if (!ctx.repos.secondary) throw new Error("no secondary repository is configured (backup.secondary in plum.yaml)");
      const copied = await setCopier(ctx, { restic, onProgress: progress });
      progress(`${copied.length} set(s) copied`);
      return copied.map((s) => s.id);
    },
    async check(role, _startedBy, progress) {
      progress(`checking the ${role} repository`);
      const result = await repositoryChecker(ctx, role, { restic });
      progress(result.ok ? "no errors found" : "errors found");
      if (!result.ok) throw new Error(`the ${role} repository check found errors (see the evidence log)`);
      return result;
    },
    async forget(_startedBy, progress) {
      progress("applying the retention policy");
      const outcome = await retentionApplier(ctx, { restic });
      progress(`kept ${outcome.keep.length} set(s), forgot ${outcome.forget.length}`);
      return outcome;
    },
    async restore(request, startedBy, progress) {
      return setRestorer({
        ctx,
        setId: request.setId,
        parts: { db: request.db, files: request.files },
        from: request.from,
        startedBy,
        instances,
        restic,
        onProgress: progress,
      });
    },
    async restoreCopy(request, startedBy, progress) {
      return copyRestorer({ ctx, restic, setId: request.setId, database: request.database, purpose: request.purpose, startedBy, onProgress: progress });
    },
    async drill(setId, startedBy, progress) {
      const report = await restoreDrill({ ctx, setId, startedBy, restic, onProgress: progress });
      if (!report.passed) throw new Error(`the drill failed: ${report.error ?? "see its checks"}`);
      return report;
    },
  };
}
