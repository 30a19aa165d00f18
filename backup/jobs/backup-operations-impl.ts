import type { BackupContext } from "../backup-context.ts";
import type { BackupOperations } from "./backup-operations.ts";
import { restoreDrill } from "../drills/restore-drill.ts";
import { describeFailures } from "../restore/manifest-verifier.ts";
import { scratchRestorer } from "../restore/scratch-restorer.ts";
import { setRestorer, type ProductInstances } from "../restore/set-restorer.ts";
import { Restic } from "../restic/restic.ts";
import { backupSetCreator } from "../sets/backup-set-creator.ts";
import { repositoryChecker } from "../sets/repository-checker.ts";
import { retentionApplier } from "../sets/retention.ts";
import { setCopier } from "../sets/set-copier.ts";

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
      });
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
      const startedAt = new Date();
      const set = await ctx.sets.findByPk(request.setId);
      const evidence = (outcome: "success" | "failure", detail: Record<string, unknown>) =>
        ctx.evidence.record({
          kind: "restore",
          outcome,
          setId: request.setId,
          repository: "primary",
          detail: {
            purpose: request.purpose,
            database: request.database,
            from: "primary",
            parts: { db: true, files: false },
            startedBy,
            startedAt: startedAt.toISOString(),
            finishedAt: new Date().toISOString(),
            rtoSeconds: (Date.now() - startedAt.getTime()) / 1000,
            ...detail,
          },
        });
      try {
        if (!set || set.status !== "succeeded") throw new Error(`set ${request.setId} is not a succeeded set in the catalogue`);
        const { checks, fingerprint } = await scratchRestorer({
          ctx,
          restic,
          set,
          repo: ctx.repos.primary,
          target: { database: request.database },
          onProgress: progress,
        });
        if (checks.some((c) => !c.passed))
          throw Object.assign(new Error(`the restore does not match the manifest of set ${set.id}: ${describeFailures(checks)}`), { checks });
        await evidence("success", { note: `restored for ${request.purpose}, verified`, verified: true, checks });
        return { checks, fingerprint };
      } catch (err) {
        const checks = (err as { checks?: unknown }).checks ?? [];
        await evidence("failure", { note: `restore for ${request.purpose} failed`, verified: false, checks, error: (err as Error).message });
        throw err;
      }
    },
    async drill(setId, startedBy, progress) {
      const report = await restoreDrill({ ctx, setId, startedBy, restic, onProgress: progress });
      if (!report.passed) throw new Error(`the drill failed: ${report.error ?? "see its checks"}`);
      return report;
    },
  };
}
