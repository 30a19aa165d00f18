import { expect } from "chai";
import { isoWeek, selectSetsToKeep, type RetentionPolicy } from "../../backup/sets/retention.ts";

const set = (id: string, at: string) => ({ id, startedAt: new Date(at) });

// Twenty sets around Monday 2026-11-23 12:00 UTC; ISO weeks: 11-23 is W48, 11-16..11-22 W47, 11-10..11-15 W46.
const SETS = [
  set("s01", "2026-12-01T00:00:00Z"), // after now: the clock went back
  set("s20", "2026-11-23T11:40:00Z"),
  set("s19", "2026-11-23T11:10:00Z"), // same hour as s20
  set("s18", "2026-11-23T09:05:00Z"),
  set("s17", "2026-11-23T06:00:00Z"),
  set("s16", "2026-11-23T00:30:00Z"),
  set("s15", "2026-11-22T18:00:00Z"), // Sunday of W47
  set("s14", "2026-11-22T06:00:00Z"),
  set("s13", "2026-11-21T12:00:00Z"),
  set("s12", "2026-11-19T12:00:00Z"),
  set("s11", "2026-11-16T08:00:00Z"), // Monday of W47
  set("s10", "2026-11-15T23:59:00Z"), // Sunday of W46
  set("s09", "2026-11-10T12:00:00Z"),
  set("s08", "2026-11-02T12:00:00Z"),
  set("s07", "2026-11-01T00:00:00Z"), // first minute of November
  set("s06", "2026-10-31T23:00:00Z"), // last hour of October
  set("s05", "2026-10-15T12:00:00Z"),
  set("s04", "2026-10-01T12:00:00Z"),
  set("s03", "2026-09-30T12:00:00Z"),
  set("s02", "2026-08-20T12:00:00Z"),
];
const NOW = new Date("2026-11-23T12:00:00Z");
const POLICY: RetentionPolicy = { keepHourly: 3, keepDaily: 4, keepWeekly: 3, keepMonthly: 3 };

describe("retention over backup sets (selectSetsToKeep)", () => {
  it("keeps exactly the sets the policy names, worked out by hand for twenty sets", () => {
    // hourly 3: s20 (11h), s18 (09h), s17 (06h)        daily 4: s20 (23rd), s15 (22nd), s13 (21st), s12 (19th)
    // weekly 3: s20 (W48), s15 (W47), s10 (W46)        monthly 3: s20 (Nov), s06 (Oct), s03 (Sep)
    // and s01, which started after now.
    const decision = selectSetsToKeep([...SETS].reverse(), POLICY, NOW);
    expect(decision.keep).to.deep.equal(["s01", "s20", "s18", "s17", "s15", "s13", "s12", "s10", "s06", "s03"]);
    expect(decision.forget).to.deep.equal(["s19", "s16", "s14", "s11", "s09", "s08", "s07", "s05", "s04", "s02"]);
    expect(decision.reasons.s20).to.deep.equal(["hourly 2026-11-23T11h", "daily 2026-11-23", "weekly 2026-W48", "monthly 2026-11"]);
    expect(decision.reasons.s10).to.deep.equal(["weekly 2026-W46"]);
    expect(decision.reasons.s06).to.deep.equal(["monthly 2026-10"]);
    expect(decision.reasons.s01).to.deep.equal(["started after now"]);
  });

  it("counts only periods that have sets: a day without one does not use up a slot", () => {
    const sets = [set("a", "2026-11-23T10:00:00Z"), set("b", "2026-11-18T10:00:00Z"), set("c", "2026-11-18T09:00:00Z")];
    const decision = selectSetsToKeep(sets, { keepHourly: 0, keepDaily: 2, keepWeekly: 0, keepMonthly: 0 }, NOW);
    expect(decision.keep).to.deep.equal(["a", "b"]);
    expect(decision.forget).to.deep.equal(["c"]);
  });

  it("keeps everything under a policy of all zeros, as restic refuses to forget without one", () => {
    const decision = selectSetsToKeep(SETS, { keepHourly: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }, NOW);
    expect(decision.forget).to.deep.equal([]);
    expect(decision.keep).to.have.length(20);
  });

  it("refuses a negative or fractional count (restic 0.14 would forget what it should keep)", () => {
    expect(() => selectSetsToKeep(SETS, { ...POLICY, keepDaily: -1 }, NOW)).to.throw("keepDaily must be a whole number");
    expect(() => selectSetsToKeep(SETS, { ...POLICY, keepWeekly: 1.5 }, NOW)).to.throw("keepWeekly");
  });

  it("puts days in ISO weeks, across a year end", () => {
    expect(isoWeek(new Date("2026-11-22T23:59:59Z"))).to.equal("2026-W47");
    expect(isoWeek(new Date("2026-11-23T00:00:00Z"))).to.equal("2026-W48");
    expect(isoWeek(new Date("2027-01-01T12:00:00Z"))).to.equal("2026-W53");
    expect(isoWeek(new Date("2025-12-29T12:00:00Z"))).to.equal("2026-W01");
  });
});
