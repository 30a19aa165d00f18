import { PlumError } from "../../lib/errors.ts";
import type { CheckResult } from "../../product/validation/suite.ts";
import type { BackupContext } from "../backup-context.ts";
import type { Restic } from "../restic/restic.ts";
import { holdBackupWork } from "../work-lock.ts";
import { describeFailures } from "./manifest-verifier.ts";
import { dropCopy } from "./production-swap.ts";
import { RestoreJournal, type RestoreRow } from "./restore-journal.ts";
import { scratchRestorer, type ScratchRestore } from "./scratch-restorer.ts";
import { databaseExists } from "./whole-databases.ts";

/**
 * A set's product database restored into a new database of the agent's choosing (the upgrade's staging copy),
 * verified against the set's manifest; journaled (kind "copy"), so a crash leaves no half-restored database
 * that a restarted agent does not drop. A failed copy is dropped here too. Evidence "restore" either way.
 */
export async function copyRestorer(props: {
  ctx: BackupContext;
  restic: Restic;
  setId: string;
  database: string;
  purpose: string;
  startedBy: string;
  onProgress?: (line: string) => void;
}): Promise<{ checks: CheckResult[]; fingerprint?: ScratchRestore["fingerprint"]; restoreId: number | null }> {
  const { ctx, restic, setId, database, purpose, startedBy } = props;
  const startedAt = new Date();
  const journal = new RestoreJournal(ctx.opsSequelize);
  let row: RestoreRow | undefined;
  let checks: CheckResult[] = [];
  let fingerprint: ScratchRestore["fingerprint"];
  const evidence = (outcome: "success" | "failure", detail: Record<string, unknown>) =>
    ctx.evidence.record({
      kind: "restore",
      outcome,
      setId,
      repository: "primary",
      detail: {
        restoreId: row?.id ?? null,
        purpose,
        database,
        from: "primary",
        parts: { db: true, files: false },
        startedBy,
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        rtoSeconds: (Date.now() - startedAt.getTime()) / 1000,
        ...detail,
      },
    });
  const work = await holdBackupWork(ctx.pg, ctx.databases.ops);
  try {
    const set = await ctx.sets.findByPk(setId);
    if (!set || set.status !== "succeeded") throw new PlumError(`set ${setId} is not a succeeded set in the catalogue`);
    if (await databaseExists(ctx.pg, database))
      throw new PlumError(`database "${database}" exists already: a restore copy is made only into a new database`, { hint: `drop "${database}" first` });
    row = await journal.create({ kind: "copy", setId, repository: "primary", parts: { db: true }, names: { database }, purpose, requestedBy: startedBy });
    const id = row.id;
    await journal.step(
      id,
      "copy",
      async () => {
        ({ checks, fingerprint } = await scratchRestorer({ ctx, restic, set, repo: ctx.repos.primary, target: { database }, onProgress: props.onProgress }));
        if (checks.some((c) => !c.passed)) throw new PlumError(`the restore does not match the manifest of set ${set.id}: ${describeFailures(checks)}`);
      },
      () => ({ checks: checks.length }),
    );
    await journal.update(id, { status: "succeeded" });
    await evidence("success", { note: `restored for ${purpose}, verified`, verified: true, checks });
    return { checks, fingerprint, restoreId: id };
  } catch (err) {
    if (row) {
      const id = row.id;
      await journal
        .step(
          id,
          "drop-copy",
          () => dropCopy(ctx.pg, { database }),
          (did) => ({ did }),
        )
        .catch(() => undefined);
      await journal.update(id, { status: "failed", error: (err as Error).message }).catch(() => undefined);
    }
    await evidence("failure", { note: `restore for ${purpose} failed`, verified: false, checks, error: (err as Error).message });
    throw err;
  } finally {
    await work.release();
  }
}
