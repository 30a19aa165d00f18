import type { PlumConfig } from "../../lib/config.ts";
import type { RepositoryRole } from "../backup-types.ts";
import type { JobRequest } from "./backup-requests.ts";
import type { ScheduledTask } from "./backup-scheduler.ts";

/**
 * What the scheduler runs, as job requests: sets (each followed by retention), an integrity check of every
 * configured repository (the evidence's integrity-check control asks for each), and restore drills. `run`
 * queues a job and resolves when it ended, failed or not: one failed check does not skip the next.
 */
export function scheduledTasks(
  backup: PlumConfig["backup"],
  repos: { primary: unknown; secondary?: unknown },
  run: (request: JobRequest) => Promise<unknown>,
): ScheduledTask[] {
  const roles: RepositoryRole[] = repos.secondary ? ["primary", "secondary"] : ["primary"];
  return [
    {
      name: "backup",
      cron: backup.schedule,
      run: async () => {
        await run({ kind: "backup", setKind: "scheduled" });
        await run({ kind: "forget" }); // retention after each scheduled set
      },
    },
    {
      name: "check",
      cron: backup.checkSchedule,
      run: async () => {
        for (const role of roles) await run({ kind: "check", role });
      },
    },
    { name: "drill", cron: backup.drillSchedule, run: () => run({ kind: "drill" }) },
  ];
}
