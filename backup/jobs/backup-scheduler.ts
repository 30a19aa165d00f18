import { CronExpressionParser } from "cron-parser";
import type { Logger } from "../../lib/logger.ts";

/** The next time a cron expression fires after `after` (UTC). */
export function nextFire(expression: string, after: Date): Date {
  return CronExpressionParser.parse(expression, { currentDate: after, tz: "UTC" }).next().toDate();
}

// setTimeout holds at most 2^31-1 ms (~24.8 days); longer waits are taken in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ScheduledTask {
  name: string;
  cron: string;
  run(): Promise<unknown>;
}

/**
 * Runs tasks at their cron times (UTC). A task whose previous run is still going is not started twice;
 * a failing run is logged and the next one is scheduled anyway.
 */
export class BackupScheduler {
  private timers = new Map<string, NodeJS.Timeout>();
  private running = new Set<string>();
  private stopped = false;
  readonly next = new Map<string, Date>();

  constructor(
    private readonly tasks: ScheduledTask[],
    private readonly log: Logger,
  ) {}

  start(now = new Date()): void {
    for (const task of this.tasks) this.arm(task, now);
  }

  private arm(task: ScheduledTask, after: Date): void {
    if (this.stopped) return;
    const at = nextFire(task.cron, after);
    this.next.set(task.name, at);
    const wait = () => {
      const left = at.getTime() - Date.now();
      if (left > MAX_TIMER_MS) {
        this.timers.set(task.name, setTimeout(wait, MAX_TIMER_MS).unref());
        return;
      }
      this.timers.set(task.name, setTimeout(() => void this.fire(task, at), Math.max(0, left)).unref());
    };
    wait();
  }

  private async fire(task: ScheduledTask, at: Date): Promise<void> {
    if (this.running.has(task.name)) {
      this.log.warn({ task: task.name }, "scheduled task skipped: its previous run is still going");
    } else {
      this.running.add(task.name);
      try {
        await task.run();
      } catch (err) {
        this.log.error({ task: task.name, err: (err as Error).message }, "scheduled task failed");
      } finally {
        this.running.delete(task.name);
      }
    }
    this.arm(task, new Date(Math.max(at.getTime(), Date.now())));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
