import { expect } from "chai";
import {
  checkMaxAgeHours,
  evaluateControls,
  retentionBucket,
  type BackupPolicy,
  type ControlId,
  type ControlInputs,
  type EvidenceFact,
  type RepositoryEncryption,
  type RepositoryStorage,
  type SetFact,
} from "../../backup/evidence/controls.ts";

const H = 3600_000;
const AS_OF = new Date("2025-03-12T12:00:00Z"); // a Wednesday

function buildPolicy(overrides: Partial<BackupPolicy> = {}): BackupPolicy {
  return {
    schedule: "0 */6 * * *",
    checkSchedule: "30 3 * * *",
    drillSchedule: "0 4 * * 0",
    retention: { keepHourly: 4, keepDaily: 3, keepWeekly: 2, keepMonthly: 2 },
    rpoHours: 6,
    rtoMinutes: 60,
    offsiteMaxAgeHours: 24,
    drillMaxAgeDays: 8,
    ...overrides,
  };
}

let nextId = 1;
function buildRecord(kind: EvidenceFact["kind"], hoursAgo: number, overrides: Partial<EvidenceFact> = {}): EvidenceFact {
  return { id: nextId++, at: new Date(AS_OF.getTime() - hoursAgo * H), kind, outcome: "success", setId: null, repository: null, detail: {}, ...overrides };
}

function buildSet(id: string, hoursAgo: number, overrides: Partial<SetFact> = {}): SetFact {
  const startedAt = new Date(AS_OF.getTime() - hoursAgo * H);
  return { id, status: "succeeded", startedAt, finishedAt: new Date(startedAt.getTime() + 5 * 60_000), forgottenAt: null, ...overrides };
}

const encrypted = (role: "primary" | "secondary"): RepositoryEncryption => ({
  role,
  location: `/srv/${role}`,
  source: "repository-files",
  keys: [{ id: "ab12", created: "2025-01-01T00:00:00Z", kdf: "scrypt" }],
  configFile: "encrypted",
});

const appendOnly = (role: "primary" | "secondary"): RepositoryStorage => ({
  role,
  location: `/srv/${role}`,
  appendOnly: true,
  served: "rclone serve restic --append-only on 127.0.0.1:41987",
});

/** A healthy appliance: a set every 6 hours for 70 days (none forgotten), copied, checked daily, drilled on Sunday. */
function buildHealthy(overrides: Partial<ControlInputs> = {}): ControlInputs {
  const sets = Array.from({ length: 70 * 4 }, (_, i) => buildSet(`s${i}`, 2 + i * 6));
  return {
    asOf: AS_OF,
    policy: buildPolicy(),
    secondaryConfigured: true,
    sets,
    records: [
      buildRecord("backup", 2, { setId: "s0", detail: { finishedAt: sets[0].finishedAt!.toISOString() } }),
      buildRecord("copy", 1.5, { setId: "s0", repository: "secondary" }),
      buildRecord("check", 8.5, { repository: "primary", detail: { subset: "3/10" } }),
      buildRecord("check", 8, { repository: "secondary", detail: { subset: "3/10" } }),
      buildRecord("drill", 80, { setId: "s13", detail: { rtoSeconds: 300 } }),
    ],
    encryption: [encrypted("primary"), encrypted("secondary")],
    storage: [appendOnly("primary"), appendOnly("secondary")],
    ...overrides,
  };
}

function control(inputs: ControlInputs, id: ControlId) {
  return evaluateControls(inputs).find((c) => c.id === id)!;
}

describe("backup evidence controls", () => {
  it("passes every control on a healthy appliance, each citing the records it was judged on", () => {
    const inputs = buildHealthy();
    const results = evaluateControls(inputs);
    expect(results.map((c) => [c.id, c.result])).to.deep.equal([
      ["backup-rpo", "pass"],
      ["retention", "pass"],
      ["offsite-copy", "pass"],
      ["integrity-check", "pass"],
      ["restore-drill", "pass"],
      ["encryption", "pass"],
      ["append-only-storage", "pass"],
    ]);
    const [backup, copy, checkPrimary, checkSecondary, drill] = inputs.records;
    expect(results[0].evidence.recordIds).to.deep.equal([backup.id]);
    expect(results[0].evidence.values).to.include({ ageHours: 1.9, rpoHours: 6 });
    expect(results[2].evidence.recordIds).to.deep.equal([copy.id]);
    expect(results[3].evidence.recordIds).to.deep.equal([checkPrimary.id, checkSecondary.id]);
    expect(results[4].evidence.recordIds).to.deep.equal([drill.id]);
    expect(results[4].evidence.values).to.include({ rtoSeconds: 300, rtoTargetSeconds: 3600 });
  });

  it("maps every control to ISO 27001 A.8.13, drills to SOC 2 A1.3 and the rest to A1.2", () => {
    for (const c of evaluateControls(buildHealthy())) {
      expect(c.frameworks.iso27001, c.id).to.deep.equal(["A.8.13"]);
      expect(c.frameworks.soc2, c.id).to.deep.equal([c.id === "restore-drill" ? "A1.3" : "A1.2"]);
    }
  });

  describe("backup within RPO", () => {
    it("fails when the newest successful backup is older than the RPO, and cites the failures since", () => {
      const failed = buildRecord("backup", 1, { outcome: "failure", detail: { error: "pg_dump failed" } });
      const inputs = buildHealthy({ records: [buildRecord("backup", 7, { setId: "old" }), failed] });
      const c = control(inputs, "backup-rpo");
      expect(c.result).to.equal("fail");
      expect(c.finding).to.equal(
        `Set old finished at ${new Date(AS_OF.getTime() - 7 * H).toISOString()}, 7 h before; beyond the RPO. 1 backup(s) failed since.`,
      );
      expect(c.evidence.values.failedSince).to.deep.equal([failed.id]);
    });

    it("measures from the backup's recorded finish, not from when it was recorded", () => {
      const finishedAt = new Date(AS_OF.getTime() - 6.5 * H).toISOString();
      expect(control(buildHealthy({ records: [buildRecord("backup", 5, { detail: { finishedAt } })] }), "backup-rpo").result).to.equal("fail");
    });

    it("ignores what happened after the moment it judges, and fails with no backup at all", () => {
      expect(control(buildHealthy({ records: [buildRecord("backup", -1)] }), "backup-rpo").finding).to.equal("There is no record of a successful backup.");
    });
  });

  describe("retention meets policy", () => {
    it("fails when a retention run kept less than the policy in force, naming it", () => {
      const forget = buildRecord("forget", 3, { detail: { policy: { keepHourly: 4, keepDaily: 1, keepWeekly: 2, keepMonthly: 2 }, forgotten: [] } });
      const c = control(buildHealthy({ records: [...buildHealthy().records, forget] }), "retention");
      expect(c.result).to.equal("fail");
      expect(c.finding).to.include(`retention run ${forget.id} kept less than the policy (keepDaily 1 < 3)`);
      expect(c.evidence.recordIds).to.deep.equal([forget.id]);
    });

    it("fails when a bucket the policy keeps lost its only set by then, and passes when it was forgotten later", () => {
      // One set on 2025-03-10 (the third newest day); the other sets of that day are gone long ago.
      const sets = buildHealthy().sets.map((s) =>
        s.startedAt.toISOString().startsWith("2025-03-10") ? { ...s, status: "forgotten" as const, forgottenAt: new Date(AS_OF.getTime() - H) } : s,
      );
      const c = control(buildHealthy({ sets }), "retention");
      expect(c.result).to.equal("fail");
      expect(c.evidence.values.missing).to.deep.include({
        rule: "keepDaily",
        bucket: "2025-03-10",
        forgotten: sets.filter((s) => s.status === "forgotten").map((s) => s.id),
      });
      const later = sets.map((s) => (s.status === "forgotten" ? { ...s, forgottenAt: new Date(AS_OF.getTime() + H) } : s));
      expect(control(buildHealthy({ sets: later }), "retention").result).to.equal("pass");
    });

    it("passes with only what the policy keeps on hand, the rest forgotten", () => {
      const sets = buildHealthy().sets;
      const keep = new Set(["s0", "s1", "s2", "s3"]); // 4 hourly: the newest 4 sets
      for (const rule of ["keepDaily", "keepWeekly", "keepMonthly"] as const) {
        const n = buildPolicy().retention[rule];
        const seen = new Map<string, string>();
        for (const s of sets) if (!seen.has(retentionBucket(rule, s.startedAt)) && seen.size < n) seen.set(retentionBucket(rule, s.startedAt), s.id);
        for (const id of seen.values()) keep.add(id);
      }
      const pruned = sets.map((s) => (keep.has(s.id) ? s : { ...s, status: "forgotten" as const, forgottenAt: new Date(s.startedAt.getTime() + 24 * H) }));
      const c = control(buildHealthy({ sets: pruned }), "retention");
      expect(c.result, c.finding).to.equal("pass");
      expect(c.evidence.setIds).to.have.members([...keep]);
      expect(c.evidence.values.bucketsRequired).to.deep.equal({ keepHourly: 4, keepDaily: 3, keepWeekly: 2, keepMonthly: 2 });
    });

    it("fails a policy that keeps nothing", () => {
      const c = control(buildHealthy({ policy: buildPolicy({ retention: { keepHourly: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 } }) }), "retention");
      expect(c.finding).to.equal("Not met: the policy keeps no set at all.");
    });
  });

  describe("off-site copy age", () => {
    it("fails without a secondary repository", () => {
      expect(control(buildHealthy({ secondaryConfigured: false }), "offsite-copy").finding).to.equal(
        "No secondary repository is configured (backup.secondary).",
      );
    });

    it("measures the age of the newest data off-site, not of the copy run", () => {
      const old = buildSet("old", 30);
      const copy = buildRecord("copy", 1, { setId: "old", repository: "secondary" });
      const c = control(buildHealthy({ sets: [old], records: [copy] }), "offsite-copy");
      expect(c.result).to.equal("fail");
      expect(c.evidence.values).to.include({ ageHours: 29.9, offsiteMaxAgeHours: 24, copiedAt: copy.at.toISOString() });
      expect(control(buildHealthy({ sets: [old], records: [buildRecord("copy", 1, { setId: "old", outcome: "failure" })] }), "offsite-copy").finding).to.equal(
        "There is no record of a successful copy to the secondary repository.",
      );
    });
  });

  describe("integrity check", () => {
    it("allows twice the check schedule's interval", () => {
      expect(checkMaxAgeHours(buildPolicy(), AS_OF)).to.equal(48);
      expect(checkMaxAgeHours(buildPolicy({ checkSchedule: "0 */6 * * *" }), AS_OF)).to.equal(12);
    });

    it("fails when a repository's newest check failed, is too old, or is missing", () => {
      const failed = buildRecord("check", 2, { repository: "secondary", outcome: "failure" });
      const c = control(buildHealthy({ records: [buildRecord("check", 49, { repository: "primary" }), failed] }), "integrity-check");
      expect(c.result).to.equal("fail");
      expect(c.finding).to.equal(
        `Not met: the newest check of the primary repository is 49 h old; the newest check of the secondary repository (record ${failed.id}) failed.`,
      );
      expect(control(buildHealthy({ records: [] }), "integrity-check").finding).to.equal(
        "Not met: the primary repository has no check on record; the secondary repository has no check on record.",
      );
    });
  });

  describe("restore drill", () => {
    it("fails when the newest drill failed even if an older one passed", () => {
      const records = [
        buildRecord("drill", 100, { detail: { rtoSeconds: 200 } }),
        buildRecord("drill", 10, { outcome: "failure", detail: { error: "row counts differ", rtoSeconds: 90 } }),
      ];
      expect(control(buildHealthy({ records }), "restore-drill").finding).to.match(/not met: it failed: row counts differ\.$/);
    });

    it("fails when it is older than drillMaxAgeDays, its RTO exceeds the target, or it measured none", () => {
      expect(control(buildHealthy({ records: [buildRecord("drill", 9 * 24, { detail: { rtoSeconds: 100 } })] }), "restore-drill").finding).to.include(
        "not met: it is 9 days old",
      );
      expect(control(buildHealthy({ records: [buildRecord("drill", 1, { detail: { rtoSeconds: 4000 } })] }), "restore-drill").finding).to.include(
        "its RTO of 4000 s exceeds 3600 s",
      );
      expect(control(buildHealthy({ records: [buildRecord("drill", 1)] }), "restore-drill").finding).to.include("it recorded no RTO");
      expect(control(buildHealthy({ records: [] }), "restore-drill").finding).to.equal("There is no record of a restore drill.");
    });
  });

  describe("encryption", () => {
    it("cites key files and an encrypted config, a recorded repository config, or restic's design for a remote one", () => {
      const recorded: RepositoryEncryption = {
        role: "secondary",
        location: "sftp:b@site-b:/plum",
        source: "recorded",
        recordId: 42,
        repositoryId: "9f1e",
        version: 2,
        keys: [{ id: "k1" }],
      };
      const c = control(buildHealthy({ encryption: [encrypted("primary"), recorded] }), "encryption");
      expect(c.result).to.equal("pass");
      expect(c.finding).to.equal("primary: 1 scrypt-protected key(s), config file encrypted; secondary: repository 9f1e version 2, 1 key(s) (record 42).");
      expect(c.evidence.recordIds).to.deep.equal([42]);
      const remote: RepositoryEncryption = { role: "secondary", location: "s3:https://s3.example.com/plum", source: "remote", keys: [] };
      expect(control(buildHealthy({ encryption: [encrypted("primary"), remote] }), "encryption").result).to.equal("pass");
    });

    it("fails for an uninitialised repository or a plain-text config", () => {
      const missing: RepositoryEncryption = { role: "secondary", location: "/mnt/b", source: "missing", keys: [] };
      expect(control(buildHealthy({ encryption: [encrypted("primary"), missing] }), "encryption").finding).to.equal(
        "Not met: the secondary repository at /mnt/b is not initialised (no key files).",
      );
      const plain: RepositoryEncryption = { ...encrypted("primary"), configFile: "plain-text" };
      expect(control(buildHealthy({ encryption: [plain, encrypted("secondary")] }), "encryption").result).to.equal("fail");
    });
  });

  describe("append-only storage", () => {
    it("passes when every configured repository is written append-only, naming how", () => {
      const c = control(buildHealthy(), "append-only-storage");
      expect(c.result).to.equal("pass");
      expect(c.finding).to.equal(
        "primary: /srv/primary through rclone serve restic --append-only on 127.0.0.1:41987; secondary: /srv/secondary through rclone serve restic --append-only on 127.0.0.1:41987.",
      );
      expect(control(buildHealthy({ secondaryConfigured: false, storage: [appendOnly("primary")] }), "append-only-storage").result).to.equal("pass");
    });

    it("fails, saying what to do, for a repository written directly, a remote one or one not described", () => {
      const direct: RepositoryStorage = { role: "primary", location: "/srv/primary", appendOnly: false };
      expect(control(buildHealthy({ storage: [direct, appendOnly("secondary")] }), "append-only-storage").finding).to.equal(
        "Not met: the primary repository /srv/primary is written directly (whoever can write a backup can delete it): set backup.appendOnly: true.",
      );
      const remote: RepositoryStorage = { role: "secondary", location: "sftp:backup@site-b:/srv/plum", appendOnly: false };
      const c = control(buildHealthy({ storage: [appendOnly("primary"), remote] }), "append-only-storage");
      expect(c.result).to.equal("fail");
      expect(c.finding).to.contain("the secondary repository sftp:backup@site-b:/srv/plum is written directly; the agent serves folders only");
      expect(control(buildHealthy({ storage: [appendOnly("primary")] }), "append-only-storage").finding).to.equal(
        "Not met: nothing is known of how the secondary repository is written.",
      );
    });
  });

  it("buckets sets as restic's keep-* rules do (UTC; ISO weeks)", () => {
    const at = new Date("2025-03-12T07:45:00Z");
    expect(retentionBucket("keepHourly", at)).to.equal("2025-03-12T07");
    expect(retentionBucket("keepDaily", at)).to.equal("2025-03-12");
    expect(retentionBucket("keepWeekly", at)).to.equal("2025-W11");
    expect(retentionBucket("keepMonthly", at)).to.equal("2025-03");
    expect(retentionBucket("keepWeekly", new Date("2024-12-30T00:00:00Z"))).to.equal("2025-W01");
    expect(retentionBucket("keepWeekly", new Date("2021-01-03T23:00:00Z"))).to.equal("2020-W53");
  });
});
