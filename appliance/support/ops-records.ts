import { needOps, type Collector } from "./collector.ts";

const UPGRADES = 20;
const AUDIT_ROWS = 200;
const BACKUP_SETS = 500;

/** The last upgrades with their reports (timings, suites, decisions, errors) and each one's journal. */
export const upgradesCollector: Collector = {
  name: "upgrades",
  async collect(ctx) {
    const ops = needOps(ctx);
    const upgrades = (
      await ops.query(
        `select id, kind, from_version, to_version, status, step, promotion, rollback_mode, snapshot_set_id, snapshot_at,
                requested_by, approved_by, approved_at, report, error, created_at, updated_at, finished_at
           from upgrades order by id desc limit ${UPGRADES}`,
      )
    ).rows;
    const journal = upgrades.length
      ? (
          await ops.query(`select id, at, upgrade_id, step, phase, detail from upgrade_journal where upgrade_id = any($1::int[]) order by id`, [
            upgrades.map((u) => u.id as number),
          ])
        ).rows
      : [];
    const production = (await ops.query("select version, changed_at, upgrade_id from production_release where id = 1")).rows[0] ?? null;
    return [
      { member: "upgrades/upgrades.json", content: { production, upgrades } },
      { member: "upgrades/journal.json", content: journal },
    ];
  },
};

/** The backup catalogue in summary: which sets exist, of what kind, how large, copied, verified by a restore or drill. */
export const backupCatalogueCollector: Collector = {
  name: "backup catalogue",
  async collect(ctx) {
    const ops = needOps(ctx);
    const sets = (
      await ops.query(
        `select s.id, s.kind, s.status, s.started_at, s.finished_at, s.app_version, s.schema_version, s.bytes_processed, s.bytes_added,
                s.copied_at, s.secondary_snapshots is not null as copied, s.error, s.started_by,
                exists (select 1 from backup_evidence e where e.set_id = s.id and e.kind in ('restore', 'drill') and e.outcome = 'success') as verified
           from backup_sets s order by s.started_at desc limit ${BACKUP_SETS}`,
      )
    ).rows;
    const evidence = (
      await ops.query(`select kind, outcome, count(*)::int as count, max(at) as last_at from backup_evidence group by kind, outcome order by kind, outcome`)
    ).rows;
    return [{ member: "backups/catalogue.json", content: { sets, evidence } }];
  },
};

export const auditCollector: Collector = {
  name: "audit log",
  async collect(ctx) {
    const ops = needOps(ctx);
    const rows = (await ops.query(`select id, at, actor, action, target, outcome, detail from audit_log order by id desc limit ${AUDIT_ROWS}`)).rows;
    return [{ member: "audit/last-rows.json", content: rows }];
  },
};
