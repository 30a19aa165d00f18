import type { BackupSet } from "../backup-catalogue.ts";
import type { PlumConfig } from "../../lib/config.ts";
import type { BackupContext } from "../backup-context.ts";
import {
  controlLookbackHours,
  evaluateControls,
  repositoryStorage,
  type BackupPolicy,
  type ControlResult,
  type EvidenceFact,
  type RepositoryEncryption,
  type SetFact,
} from "./controls.ts";
import type { EvidenceRow } from "./evidence-log.ts";
import { repositoryEncryption } from "./repository-encryption.ts";

/** What the controls are judged on: the policy, the repositories, the catalogue and the evidence log. */
export type EvidenceSource = Pick<BackupContext, "config" | "repos" | "sets" | "evidence">;

export function policyOf(config: PlumConfig): BackupPolicy {
  const { schedule, checkSchedule, drillSchedule, retention, rpoHours, rtoMinutes, offsiteMaxAgeHours, drillMaxAgeDays } = config.backup;
  return { schedule, checkSchedule, drillSchedule, retention: { ...retention }, rpoHours, rtoMinutes, offsiteMaxAgeHours, drillMaxAgeDays };
}

export function factOf(row: EvidenceRow): EvidenceFact {
  return { id: row.id, at: row.at, kind: row.kind, outcome: row.outcome, setId: row.set_id, repository: row.repository, detail: row.detail ?? {} };
}

/** When each set was first listed by a forget record (`detail.forgotten`: set ids). */
function forgottenTimes(forgets: EvidenceRow[]): Map<string, Date> {
  const at = new Map<string, Date>();
  for (const f of forgets) {
    for (const id of Array.isArray(f.detail?.forgotten) ? (f.detail.forgotten as unknown[]) : []) {
      const prev = at.get(String(id));
      if (!prev || f.at < prev) at.set(String(id), f.at);
    }
  }
  return at;
}

export interface ControlJudgement {
  policy: BackupPolicy;
  repositories: RepositoryEncryption[];
  controls: ControlResult[];
}

/**
 * The controls as of `asOf`, judged on `rows` (the evidence from at least asOf − controlLookbackHours on) and
 * on the sets started before `setsBefore`. An export and `plumctl status` both judge here, so they agree.
 */
export async function controlJudgement(props: {
  source: EvidenceSource;
  asOf: Date;
  rows: EvidenceRow[];
  sets: BackupSet[];
  setsBefore: Date;
}): Promise<ControlJudgement> {
  const { source, asOf } = props;
  const policy = policyOf(source.config);
  const forgotten = forgottenTimes(await source.evidence.list({ kind: "forget", limit: 100_000 }));
  const setFacts: SetFact[] = props.sets
    .filter((s) => s.startedAt < props.setsBefore)
    .map((s) => ({ id: s.id, status: s.status, startedAt: s.startedAt, finishedAt: s.finishedAt, forgottenAt: forgotten.get(s.id) ?? null }));
  const facts = props.rows.map(factOf);
  const repos = [source.repos.primary, ...(source.repos.secondary ? [source.repos.secondary] : [])];
  const repositories = repos.map((repo) => repositoryEncryption(repo, facts));
  const controls = evaluateControls({
    asOf,
    policy,
    secondaryConfigured: !!source.repos.secondary,
    records: facts,
    sets: setFacts,
    encryption: repositories,
    storage: repos.map(repositoryStorage),
  });
  return { policy, repositories, controls };
}

/** The controls as they stand at `now`: what `plumctl status` shows (the evidence of the look-back, every set). */
export async function controlsNow(source: EvidenceSource, now = new Date()): Promise<ControlJudgement> {
  const from = new Date(now.getTime() - controlLookbackHours(policyOf(source.config), now) * 3600_000);
  const [rows, sets] = await Promise.all([source.evidence.between(from, now), source.sets.findAll({ order: [["startedAt", "ASC"]] })]);
  return controlJudgement({ source, asOf: now, rows, sets, setsBefore: now });
}
