import { readFileSync } from "node:fs";
import pg from "pg";
import { clientConfig, type PgServer } from "../../lib/db/database.ts";
import { waitFor } from "../../lib/wait.ts";

/** The advisory lock a paused write waits on (two-key form: pg_locks shows classid/objid, objsubid 2). */
const PAUSE_KEY: [number, number] = [7243, 1];

/**
 * Where a restore process is stopped so that a test can SIGKILL it at an exact point, with nothing in the
 * product code: triggers in plum_ops (test-only) make one chosen write wait on an advisory lock the test
 * holds. "journal:<step>:<phase>" pauses before that restore-journal entry is written (so after the work
 * before it was done); "set:succeeded" pauses the pre-restore set's final update (every part stored, the
 * catalogue row still `running`). The paused write is in an open transaction: terminating its backend after
 * the kill aborts it, as a lost client does.
 */
export class CrashPoints {
  private constructor(private readonly client: pg.Client) {}

  static async install(server: PgServer, opsDatabase: string): Promise<CrashPoints> {
    const client = new pg.Client(clientConfig(server, opsDatabase));
    client.on("error", () => undefined);
    await client.connect();
    await client.query(`
      create table if not exists test_pause_at (what text primary key);
      create or replace function test_pause_journal() returns trigger language plpgsql as $$
      begin
        if exists (select 1 from test_pause_at where what = 'journal:' || new.step || ':' || new.phase) then
          perform pg_advisory_xact_lock(${PAUSE_KEY[0]}, ${PAUSE_KEY[1]});
        end if;
        return new;
      end $$;
      create or replace function test_pause_set() returns trigger language plpgsql as $$
      begin
        if new.kind = 'pre-restore' and old.status = 'running' and new.status = 'succeeded'
           and exists (select 1 from test_pause_at where what = 'set:succeeded') then
          perform pg_advisory_xact_lock(${PAUSE_KEY[0]}, ${PAUSE_KEY[1]});
        end if;
        return new;
      end $$;
      drop trigger if exists test_pause_journal on restore_journal;
      create trigger test_pause_journal before insert on restore_journal for each row execute function test_pause_journal();
      drop trigger if exists test_pause_set on backup_sets;
      create trigger test_pause_set before update on backup_sets for each row execute function test_pause_set();
    `);
    await client.query("select pg_advisory_lock($1, $2)", PAUSE_KEY);
    return new CrashPoints(client);
  }

  async pauseAt(what: string): Promise<void> {
    await this.client.query("delete from test_pause_at");
    await this.client.query("insert into test_pause_at (what) values ($1)", [what]);
  }

  async clear(): Promise<void> {
    await this.client.query("delete from test_pause_at");
  }

  private async waiting(): Promise<number[]> {
    const { rows } = await this.client.query<{ pid: number }>(
      `select pid from pg_locks where locktype = 'advisory' and classid = $1 and objid = $2 and objsubid = 2 and not granted
        and database = (select oid from pg_database where datname = current_database())`,
      PAUSE_KEY,
    );
    return rows.map((r) => r.pid);
  }

  /** Resolves once some process waits at the pause; rejects when `exited` settles first. */
  async paused(exited: Promise<unknown>, output: () => string, timeoutMs = 120_000): Promise<void> {
    let gone = false;
    void exited.then(() => (gone = true));
    await waitFor(
      "the restore to reach its pause",
      async () => {
        if (gone) throw new Error(`the restore process ended before it reached the pause:\n${output()}`);
        return (await this.waiting()).length > 0 ? true : undefined;
      },
      { timeoutMs, firstDelayMs: 20, maxDelayMs: 100 },
    );
  }

  /** After the kill: the paused write's backend is terminated (its transaction aborts) and the pause cleared. */
  async abortPausedWrite(): Promise<void> {
    await this.clear();
    for (const pid of await this.waiting()) await this.client.query("select pg_terminate_backend($1)", [pid]);
  }

  async close(): Promise<void> {
    await this.client
      .query("drop trigger if exists test_pause_journal on restore_journal; drop trigger if exists test_pause_set on backup_sets")
      .catch(() => undefined);
    await this.client.end().catch(() => undefined);
  }
}

/** Every process below `pid` (from /proc), children first. */
export function descendantsOf(pid: number): number[] {
  let listed: string;
  try {
    listed = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8");
  } catch {
    return [];
  }
  const children = listed.trim().split(/\s+/).filter(Boolean).map(Number);
  return children.flatMap((child) => [child, ...descendantsOf(child)]);
}

/**
 * SIGKILL a process and everything it started, as a crash of the machine's service (its cgroup) does: frozen
 * first so it starts nothing more, then killed from the bottom up. Only the pids of this test's own child.
 */
export function killTree(pid: number): void {
  process.kill(pid, "SIGSTOP");
  for (const p of [...descendantsOf(pid)].reverse()) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  process.kill(pid, "SIGKILL");
}

/** Until no connection to `database` holds the backup work lock any more (a killed process's go within moments). */
export async function backendsGone(server: PgServer, database: string, applicationName = "plum backup work"): Promise<void> {
  await waitFor(
    "the killed process's connections to close",
    async () => {
      const client = new pg.Client(clientConfig(server, "postgres"));
      await client.connect();
      try {
        const { rows } = await client.query("select 1 from pg_stat_activity where application_name = $1 and datname = $2", [applicationName, database]);
        return rows.length === 0 ? true : undefined;
      } finally {
        await client.end();
      }
    },
    { timeoutMs: 30_000, maxDelayMs: 100 },
  );
}
