import { expect } from "chai";
import { judgeSoak, p99 } from "../../appliance/upgrade/soak-watch.ts";
import { windowOpen } from "../../appliance/upgrade/upgrade-manager.ts";
import { migrateInvocation, validateInvocation } from "../../appliance/upgrade/release-commands-runner.ts";

const thresholds = { seconds: 300, maxErrorRatio: 0.02, maxP99Ms: 2000, minRequests: 20, unhealthyChecks: 3 };

describe("upgrade rules", () => {
  describe("soak judgement", () => {
    it("holds with healthy checks, few errors and fast answers", () => {
      expect(judgeSoak({ requests: 1000, errors5xx: 20, latenciesMs: Array(1000).fill(15), failuresInARow: 2 }, thresholds)).to.equal(undefined);
    });
    it("breaches on failed health checks in a row, whatever the traffic", () => {
      expect(judgeSoak({ requests: 0, errors5xx: 0, latenciesMs: [], failuresInARow: 3 }, thresholds)).to.equal(
        "health: 3 failed health checks in a row (limit 3)",
      );
    });
    it("breaches on the 5xx ratio only once enough requests were seen", () => {
      expect(judgeSoak({ requests: 19, errors5xx: 19, latenciesMs: [], failuresInARow: 0 }, thresholds)).to.equal(undefined);
      expect(judgeSoak({ requests: 100, errors5xx: 3, latenciesMs: [], failuresInARow: 0 }, thresholds)).to.equal(
        "5xx ratio 3.0 % over 100 requests (limit 2.0 %)",
      );
    });
    it("breaches on p99 latency", () => {
      const latencies = [...Array(98).fill(10), 2500, 2600];
      expect(p99(latencies)).to.equal(2500);
      expect(judgeSoak({ requests: 100, errors5xx: 0, latenciesMs: latencies, failuresInARow: 0 }, thresholds)).to.equal(
        "p99 latency 2500 ms over 100 requests (limit 2000 ms)",
      );
    });
  });

  describe("maintenance window", () => {
    it("is open from the cron time for its minutes, closed otherwise", () => {
      expect(windowOpen("0 2 * * *", 120, new Date("2026-11-23T02:00:00Z"))).to.equal(true);
      expect(windowOpen("0 2 * * *", 120, new Date("2026-11-23T03:59:00Z"))).to.equal(true);
      expect(windowOpen("0 2 * * *", 120, new Date("2026-11-23T04:00:00Z"))).to.equal(false);
      expect(windowOpen("0 2 * * *", 120, new Date("2026-11-23T01:59:59Z"))).to.equal(false);
    });
  });

  describe("release commands (builders are pure: the database URL goes in the environment, never argv)", () => {
    it("migrate up, and down to a named migration", () => {
      const up = migrateInvocation("postgres://plum:secret@127.0.0.1:5433/plum_staging", { timeoutMs: 1000 });
      expect(up.args).to.deep.equal(["migrate"]);
      expect(up.env).to.deep.equal({ PLUM_MIGRATE_DATABASE_URL: "postgres://plum:secret@127.0.0.1:5433/plum_staging" });
      expect(migrateInvocation("postgres://x", { to: "1732000000200_payouts", timeoutMs: 1000 }).args).to.deep.equal([
        "migrate",
        "--to",
        "1732000000200_payouts",
      ]);
    });
    it("validate with the suites named", () => {
      const v = validateInvocation("http://127.0.0.1:41234", "postgres://plum:secret@127.0.0.1:5433/plum_staging", ["health", "payouts"], 1000);
      expect(v.args).to.deep.equal(["validate", "--url", "http://127.0.0.1:41234", "--suite", "health", "--suite", "payouts"]);
      expect(v.args.join(" ")).to.not.include("secret");
      expect(v.env.PLUM_VALIDATE_DATABASE_URL).to.include("plum_staging");
    });
  });
});
