import { expect } from "chai";
import { nextFire } from "../../backup/jobs/backup-scheduler.ts";
import { ConfigError, loadConfig } from "../../lib/config.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { writeFileSync } from "node:fs";
import path from "node:path";

describe("backup schedule", () => {
  it("fires the default schedules at the expected UTC times", () => {
    const now = new Date("2026-11-23T08:31:00Z"); // a Monday
    expect(nextFire("0 */6 * * *", now).toISOString()).to.equal("2026-11-23T12:00:00.000Z");
    expect(nextFire("30 3 * * *", now).toISOString()).to.equal("2026-11-24T03:30:00.000Z");
    expect(nextFire("0 4 * * 0", now).toISOString()).to.equal("2026-11-29T04:00:00.000Z");
    expect(nextFire("0 */6 * * *", new Date("2026-11-23T12:00:00Z")).toISOString()).to.equal("2026-11-23T18:00:00.000Z");
  });

  it("refuses a bad cron expression and a negative retention in plum.yaml, with hints", () => {
    const home = tempHome();
    try {
      writeFileSync(path.join(home, "plum.yaml"), 'backup:\n  schedule: "every six hours"\n  retention:\n    keepDaily: -1\n');
      let error: ConfigError | undefined;
      try {
        loadConfig({ PLUM_HOME: home });
      } catch (err) {
        error = err as ConfigError;
      }
      expect(error).to.be.instanceOf(ConfigError);
      expect(error!.problems).to.have.length(2);
      expect(error!.message).to.include("backup.schedule: is not a 5-field cron expression: must be a cron expression (5 fields)");
      expect(error!.message).to.include("backup.retention.keepDaily: ").and.include("0 or more (never negative)");
    } finally {
      removeHome(home);
    }
  });
});
