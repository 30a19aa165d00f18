import { expect } from "chai";
import { loadConfig } from "../../lib/config.ts";
import type { JobRequest } from "../../backup/jobs/backup-requests.ts";
import { scheduledTasks } from "../../backup/jobs/backup-schedule.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";

/** What the scheduler asks the job queue for, task by task (the requests, not the clock: see backup-scheduler.test.ts). */
describe("backup schedule", () => {
  const home = tempHome();
  const backup = loadConfig({ PLUM_HOME: home }).backup;
  after(() => removeHome(home));

  async function requestsOf(repos: { primary: unknown; secondary?: unknown }, failing: JobRequest["kind"][] = []) {
    const asked: JobRequest[] = [];
    // A failed job resolves like any other (the queue's view): one failed check must not skip the next.
    const tasks = scheduledTasks(backup, repos, async (r) => {
      asked.push(r);
      return { status: failing.includes(r.kind) ? "failed" : "succeeded" };
    });
    const byTask: Record<string, JobRequest[]> = {};
    for (const task of tasks) {
      asked.length = 0;
      await task.run();
      byTask[task.name] = [...asked];
    }
    return byTask;
  }

  it("checks every configured repository: with a second site, the secondary too (its evidence control asks for it)", async () => {
    const asked = await requestsOf({ primary: {}, secondary: {} }, ["check"]);
    expect(asked.check).to.deep.equal([
      { kind: "check", role: "primary" },
      { kind: "check", role: "secondary" },
    ]);
  });

  it("checks the primary alone when there is no second site; a set is followed by retention; drills run", async () => {
    const asked = await requestsOf({ primary: {} });
    expect(asked.check).to.deep.equal([{ kind: "check", role: "primary" }]);
    expect(asked.backup).to.deep.equal([{ kind: "backup", setKind: "scheduled" }, { kind: "forget" }]);
    expect(asked.drill).to.deep.equal([{ kind: "drill" }]);
  });

  it("runs each task on its plum.yaml schedule", () => {
    const tasks = scheduledTasks(backup, { primary: {} }, async () => undefined);
    expect(tasks.map((t) => [t.name, t.cron])).to.deep.equal([
      ["backup", backup.schedule],
      ["check", backup.checkSchedule],
      ["drill", backup.drillSchedule],
    ]);
  });
});
