import pg from "pg";
import { clientConfig, type PgServer } from "../lib/db/database.ts";
import { sleep } from "../lib/wait.ts";

/**
 * Who is making sets and restoring right now, across processes (the agent, a `plumctl` run with no agent): a
 * PostgreSQL session advisory lock in plum_ops. Every backup job holds it shared for as long as it runs; a
 * recovery takes it exclusively, so it never mistakes another process's restore or set for one a crash left
 * behind. A killed process's connection closes, and its share goes with it: no stale lock to clear by hand.
 */
const WORK_LOCK = "select hashtext('plum:backup-work')::bigint as key";

export interface HeldLock {
  release(): Promise<void>;
}

async function lockClient(server: PgServer, database: string): Promise<pg.Client> {
  const client = new pg.Client({ ...clientConfig(server, database), application_name: "plum backup work" });
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

function holding(client: pg.Client): HeldLock {
  return { release: () => client.end().catch(() => undefined) };
}

/** Hold the lock shared while a job runs (waits only for a recovery, which is short). */
export async function holdBackupWork(server: PgServer, opsDatabase: string): Promise<HeldLock> {
  const client = await lockClient(server, opsDatabase);
  try {
    await client.query(`select pg_advisory_lock_shared((${WORK_LOCK}))`);
    return holding(client);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

/**
 * Take the lock exclusively, or undefined when some process's job still holds it after `waitMs` (a process
 * killed a moment ago may take that long to lose its connection).
 */
export async function tryExclusiveBackupWork(server: PgServer, opsDatabase: string, opts: { waitMs?: number } = {}): Promise<HeldLock | undefined> {
  const client = await lockClient(server, opsDatabase);
  const deadline = Date.now() + (opts.waitMs ?? 5000);
  try {
    for (;;) {
      const { rows } = await client.query<{ ok: boolean }>(`select pg_try_advisory_lock((${WORK_LOCK})) as ok`);
      if (rows[0].ok) return holding(client);
      if (Date.now() >= deadline) break;
      await sleep(200);
    }
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  await client.end().catch(() => undefined);
  return undefined;
}
