import pg from "pg";
import { clientConfig, type PgServer } from "../../lib/db/database.ts";
import { applyProductPrivileges, type RoleNames } from "../../lib/db/product-roles.ts";
import { rowDifferences } from "../../lib/db/row-differences.ts";
import { fingerprintDatabase, type DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";
import type { CheckResult } from "../../product/validation/suite.ts";
import type { AgentJobRequest } from "../../backup/jobs/backup-requests.ts";
import { databaseExists, dropDatabase } from "../../backup/restore/whole-databases.ts";
import type { StagingSlot } from "./upgrade-host.ts";

async function connected(server: PgServer, database: string): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(server, database));
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

/**
 * The staging copy's database side: the snapshot restored into it through the backup job queue (verified, with
 * the restored copy's fingerprint), its fingerprints, and the data-diff gate's row-by-row comparison against the
 * snapshot restored once more into `scratch` (dropped afterwards, and by `drop` after a crash).
 */
export function stagingDatabase(deps: {
  pg: PgServer;
  /** The staging database. */
  database: string;
  /** Where the gate's comparison restores the snapshot once more. */
  scratch: string;
  /** The product's roles: staging is given to them like production (the scratch copy stays the agent's alone). */
  roles: RoleNames;
  /** Run a job on the backup queue to its end; throws when it failed; resolves with its result. */
  runJob(request: AgentJobRequest, actor: string): Promise<unknown>;
}): Pick<StagingSlot, "restore" | "fingerprint" | "rowDifferences"> & { drop(): Promise<void> } {
  const { pg: server, database, scratch } = deps;
  return {
    async restore(setId, actor) {
      const { checks, fingerprint } = (await deps.runJob({ kind: "restore-copy", setId, database, purpose: "staging" }, actor)) as {
        checks: CheckResult[];
        fingerprint?: { fingerprint: DatabaseFingerprint; seconds: number };
      };
      await applyProductPrivileges(server, database, deps.roles);
      return { checks: checks.length, failed: checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail ?? ""}`), fingerprint };
    },
    fingerprint: () => fingerprintDatabase(server, database),
    async rowDifferences(setId, tables, actor) {
      if (await databaseExists(server, scratch)) await dropDatabase(server, scratch);
      try {
        await deps.runJob({ kind: "restore-copy", setId, database: scratch, purpose: "the data-diff gate (the rows before the migrations)" }, actor);
        const before = await connected(server, scratch);
        try {
          const after = await connected(server, database);
          try {
            const out: Awaited<ReturnType<StagingSlot["rowDifferences"]>> = [];
            for (const t of tables) {
              try {
                out.push({ table: t.after.table, differences: await rowDifferences({ before, after, beforeTable: t.before, afterTable: t.after }) });
              } catch (err) {
                out.push({ table: t.after.table, error: (err as Error).message });
              }
            }
            return out;
          } finally {
            await after.end();
          }
        } finally {
          await before.end();
        }
      } finally {
        await dropDatabase(server, scratch);
      }
    },
    async drop() {
      for (const db of [database, scratch]) if (await databaseExists(server, db)) await dropDatabase(server, db);
    },
  };
}
