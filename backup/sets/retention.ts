import { Op } from "sequelize";
import type { BackupContext } from "../backup-context.ts";
import type { Repository } from "../backup-types.ts";
import { maintenanceAccess } from "../restic/append-only-server.ts";
import { Restic } from "../restic/restic.ts";

export interface RetentionPolicy {
  keepHourly: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
}

export interface RetentionDecision {
  /** Newest first. */
  keep: string[];
  forget: string[];
  /** Why each kept set is kept, e.g. ["daily 2026-11-23", "weekly 2026-W47"]. */
  reasons: Record<string, string[]>;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** The ISO 8601 week of a UTC instant: weeks start on Monday, week 1 holds the year's first Thursday. */
export function isoWeek(at: Date): string {
  const day = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // the Thursday of this week decides its year
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((day.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${day.getUTCFullYear()}-W${pad(week)}`;
}

const BUCKETS: Array<{ rule: keyof RetentionPolicy; name: string; of: (at: Date) => string }> = [
  { rule: "keepHourly", name: "hourly", of: (at) => at.toISOString().slice(0, 13) + "h" },
  { rule: "keepDaily", name: "daily", of: (at) => at.toISOString().slice(0, 10) },
  { rule: "keepWeekly", name: "weekly", of: isoWeek },
  { rule: "keepMonthly", name: "monthly", of: (at) => at.toISOString().slice(0, 7) },
];

/**
 * Which backup sets a policy keeps. Pure: the same sets, policy and `now` always give the same answer.
 *
 * Works on whole sets, never on restic snapshots: restic's own `--keep-*` groups snapshots by host and paths,
 * so it would judge a set's three parts separately and could keep one part and forget another.
 *
 * The semantics are restic's, in UTC: `keepDaily: N` keeps the newest set of each of the N most recent days
 * that HAVE sets (a day without a set does not use up one of the N); likewise hours, ISO weeks (Monday to
 * Sunday) and calendar months. The rules are independent: a set kept by several has several reasons, and a
 * set is forgotten only when no rule keeps it.
 * Two safeguards: a policy of all zeros keeps everything (restic refuses to forget with no policy, and so do
 * we), and a set that started after `now` (the clock went back) is kept and left out of the counting.
 */
export function selectSetsToKeep(sets: Array<{ id: string; startedAt: Date }>, policy: RetentionPolicy, now: Date): RetentionDecision {
  for (const { rule } of BUCKETS) {
    const n = policy[rule];
    if (!Number.isInteger(n) || n < 0) throw new Error(`retention ${rule} must be a whole number, 0 or more (got ${n})`);
  }
  const newestFirst = [...sets].sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime() || b.id.localeCompare(a.id));
  const reasons: Record<string, string[]> = {};
  const keep = (id: string, reason: string) => (reasons[id] ??= []).push(reason);

  const noPolicy = BUCKETS.every(({ rule }) => policy[rule] === 0);
  const counted = newestFirst.filter((s) => {
    if (noPolicy) keep(s.id, "no retention policy: everything is kept");
    else if (s.startedAt > now) keep(s.id, "started after now");
    else return true;
    return false;
  });
  for (const { rule, name, of } of BUCKETS) {
    let left = policy[rule];
    let lastBucket: string | undefined;
    for (const set of counted) {
      if (left === 0) break;
      const bucket = of(set.startedAt);
      if (bucket === lastBucket) continue;
      keep(set.id, `${name} ${bucket}`);
      lastBucket = bucket;
      left--;
    }
  }
  return {
    keep: newestFirst.filter((s) => reasons[s.id]).map((s) => s.id),
    forget: newestFirst.filter((s) => !reasons[s.id]).map((s) => s.id),
    reasons,
  };
}

export interface RetentionOutcome extends RetentionDecision {
  /** Snapshots forgotten in each repository. */
  snapshotsForgotten: Partial<Record<Repository["role"], number>>;
}

/**
 * Apply the configured policy: in the primary and (when it exists) the secondary repository, forget every
 * snapshot of the sets not kept, and those a failed set may have left; prune; mark those sets `forgotten`.
 * Snapshots of sets the catalogue does not know are never touched (a catalogue that lost rows must not
 * make the repositories lose data). Evidence `forget` either way. A repository served append-only is read
 * through its endpoint and forgotten and pruned through its maintenance access (the folder itself).
 */
export async function retentionApplier(ctx: BackupContext, opts: { now?: Date; restic?: Restic } = {}): Promise<RetentionOutcome> {
  const restic = opts.restic ?? new Restic({ log: ctx.log });
  const policy = ctx.config.backup.retention;
  const succeeded = await ctx.sets.findAll({ where: { status: "succeeded" } });
  const decision = selectSetsToKeep(succeeded, policy, opts.now ?? new Date());
  const failed = await ctx.sets.findAll({ where: { status: "failed" }, attributes: ["id"] });
  const toForget = new Set([...decision.forget, ...failed.map((s) => s.id)]);
  const snapshotsForgotten: RetentionOutcome["snapshotsForgotten"] = {};
  try {
    for (const repo of [ctx.repos.primary, ctx.repos.secondary]) {
      if (!repo || !(await restic.isInitialised(repo))) continue;
      await restic.unlock(repo);
      const doomed = (await restic.snapshots(repo, { tags: ["plum-set"] })).filter((s) => s.tags.some((t) => t.startsWith("set:") && toForget.has(t.slice(4))));
      // The one place that deletes: through the maintenance access, never the append-only endpoint (which refuses).
      const maintenance = maintenanceAccess(repo);
      const forgotten = await restic.forget(
        maintenance,
        doomed.map((s) => s.id),
      );
      if (forgotten.length > 0) await restic.prune(maintenance);
      snapshotsForgotten[repo.role] = forgotten.length;
    }
    if (decision.forget.length > 0) await ctx.sets.update({ status: "forgotten" }, { where: { id: { [Op.in]: decision.forget }, status: "succeeded" } });
  } catch (err) {
    await ctx.evidence.record({
      kind: "forget",
      outcome: "failure",
      detail: { policy, kept: decision.keep, forgotten: decision.forget, error: (err as Error).message },
    });
    throw err;
  }
  await ctx.evidence.record({ kind: "forget", outcome: "success", detail: { policy, kept: decision.keep, forgotten: decision.forget, snapshotsForgotten } });
  return { ...decision, snapshotsForgotten };
}
