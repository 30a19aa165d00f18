import { QueryTypes, type Sequelize } from "sequelize";
import type { PlumConfig } from "../../lib/config.ts";
import { homeLayout } from "../../lib/paths.ts";
import { withDeadline } from "../../lib/wait.ts";
import { backupStatus, type BackupStatus } from "../../backup/backup-status.ts";
import type { EvidenceSource } from "../../backup/evidence/control-judgement.ts";
import { agentPidFile } from "../agent-lock.ts";
import type { ApplianceStatus } from "../console/status.ts";
import type { UpgradeJournal } from "../upgrade/upgrade-journal.ts";
import { diskFacts } from "./disk-facts.ts";
import type { StatusFacts, StatusReport } from "./status-report.ts";
import { statusReport } from "./status-verdict.ts";

/** Each part gets this long: a status that hangs on a stuck database is no status. */
const PART_DEADLINE_MS = 5_000;

/** A part of the report, or null and the sentence saying why it could not be read. */
async function part<T>(what: string, unread: string[], work: () => Promise<T>): Promise<T | null> {
  try {
    return await withDeadline(what, PART_DEADLINE_MS, work());
  } catch (err) {
    unread.push(`${what} could not be read: ${(err as Error).message}`);
    return null;
  }
}

/**
 * `plumctl status` as the agent answers it (GET /control/status). The console's account of the appliance
 * (agent, production, instances, proxy, database) is reused as it is; backups are backup-status.ts's, the
 * pending upgrade the journal's.
 */
export function statusGatherer(deps: {
  config: PlumConfig;
  appliance: () => Promise<ApplianceStatus>;
  opsSequelize: Sequelize;
  backup: EvidenceSource;
  journal: UpgradeJournal;
}): () => Promise<StatusReport> {
  return async () => {
    const unread: string[] = [];
    const checkedAt = new Date();
    const [appliance, reachable, backup, upgrade] = await Promise.all([
      part("the appliance's state", unread, deps.appliance),
      // Asked now, not remembered from the start: the server may have gone since.
      withDeadline(
        "the database to answer",
        PART_DEADLINE_MS,
        deps.opsSequelize.query<{ v: string }>("select current_setting('server_version') as v", { type: QueryTypes.SELECT, plain: true }),
      ).then(
        (row) => ({ ok: true as const, version: row?.v }),
        (err: Error) => ({ ok: false as const, detail: err.message }),
      ),
      part<BackupStatus>("the backup catalogue and evidence", unread, () => backupStatus(deps.backup, checkedAt)),
      part("the upgrade journal", unread, () => deps.journal.active()),
    ]);
    const serving = appliance?.instances.find((i) => i.id === appliance.production.instance);
    const facts: StatusFacts = {
      checkedAt: checkedAt.toISOString(),
      agent: {
        running: true,
        answering: true,
        version: appliance?.agentVersion ?? null,
        pid: process.pid,
        startedAt: appliance?.startedAt.toISOString() ?? null,
        pidFile: agentPidFile(homeLayout(deps.config.home).runDir).file,
        hint: null,
      },
      production: appliance && {
        version: appliance.production.version ?? null,
        instance: appliance.production.instance ?? null,
        healthy: appliance.production.healthy,
        live: serving?.live ?? false,
        ready: serving?.ready ?? false,
        detail: appliance.production.detail,
      },
      proxy: appliance && {
        listening: appliance.proxy.listening,
        instance: appliance.proxy.activeInstance ?? null,
        version: appliance.instances.find((i) => i.id === appliance.proxy.activeInstance)?.version ?? null,
      },
      database: appliance && {
        mode: appliance.database.mode,
        host: appliance.database.host,
        port: appliance.database.port,
        serverVersion: (reachable.ok && reachable.version) || appliance.database.serverVersion,
        reachable: reachable.ok,
        detail: reachable.ok ? null : reachable.detail,
      },
      backup,
      disk: diskFacts(deps.config),
      upgrade: upgrade
        ? {
            id: upgrade.id,
            kind: upgrade.kind,
            status: upgrade.status,
            step: upgrade.step,
            fromVersion: upgrade.fromVersion,
            toVersion: upgrade.toVersion,
            startedAt: new Date(upgrade.createdAt).toISOString(),
          }
        : null,
      unread,
    };
    return statusReport(facts);
  };
}
