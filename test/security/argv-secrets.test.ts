import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Agent } from "../../appliance/agent.ts";
import { runReleaseMigrate } from "../../appliance/upgrade/release-commands-runner.ts";
import { stagingDatabase } from "../../appliance/upgrade/staging-database.ts";
import { stageStep, type StageHost } from "../../appliance/upgrade/upgrade-steps.ts";
import type { Upgrade, UpgradeReport } from "../../appliance/upgrade/upgrade-journal.ts";
import { backupContextFor, type BackupContext } from "../../backup/backup-context.ts";
import { backupOperationsFor } from "../../backup/jobs/backup-operations-impl.ts";
import { startChild, type RunningChild } from "../../lib/child-process.ts";
import { connectionUrl } from "../../lib/db/database.ts";
import { createLogger } from "../../lib/logger.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { waitFor } from "../../lib/wait.ts";
import { signInFirstAdmin } from "../support/console-users.ts";
import type { FreshDatabases } from "../support/databases.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { plumctl } from "../support/plumctl.ts";
import { runTempDir } from "../support/run-dir.ts";

/** Every process below `root` (this test's children and theirs), by pid: its command line as /proc holds it. */
function processTree(root: number): Map<number, string> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(/\) \S+ (\d+)/.exec(readFileSync(`/proc/${name}/stat`, "utf8"))![1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      /* gone meanwhile */
    }
  }
  const tree = new Map<number, string>();
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    try {
      tree.set(pid, readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim());
    } catch {
      /* gone meanwhile */
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** Samples the argv of this test's process tree every 50 ms while `work` runs: every distinct command line seen. */
async function sampledArgv<T>(work: () => Promise<T>, into: Set<string>): Promise<{ result: T; samples: number }> {
  let running = true;
  let samples = 0;
  const sampler = (async () => {
    while (running) {
      for (const cmdline of processTree(process.pid).values()) if (cmdline) into.add(cmdline);
      samples++;
      await new Promise((resolve) => setTimeout(resolve, 50)); // every restic, pg_dump, pg_restore and plumctl lives hundreds of ms at least
    }
  })();
  try {
    return { result: await work(), samples };
  } finally {
    running = false;
    await sampler;
  }
}

/**
 * Issue 11, acceptance: `ps` during a backup, copy, check, restore and an upgrade's stage step shows no secret in
 * any argv. The secondary repository is a `rest:` URL with a user and password (this test's own rclone), the
 * primary is served append-only by the agent's rclone; the argv of every process below this test is sampled
 * throughout, and the restic password, both repositories' credentials, the database password, the control
 * token and the session key must appear in none. The console's Backups page and `plumctl` show the URL masked.
 */
describe("security: no secret in any argv (backup, copy, check, restore, upgrade stage)", function () {
  this.timeout(600_000);
  const secondaryPassword = randomBytes(18).toString("hex");
  let secondaryServer: RunningChild;
  let secondaryUrl: string;
  let agent: Agent;
  let dbs: FreshDatabases;
  let stopAgent: () => Promise<void>;
  let env: Record<string, string>;
  let extraCtx: BackupContext | undefined;
  const seen = new Set<string>();

  /** Every secret of this appliance and of its repositories, with a name for the failure message. */
  function secrets(): Array<[string, string]> {
    const dir = path.join(agent.config.home, "secrets");
    const file = (name: string) => readFileSync(path.join(dir, name), "utf8").trim();
    const list: Array<[string, string]> = [
      ["restic password", file("restic-password")],
      ["control token", file("control-token")],
      ["session key", file("session-key")],
      ["database password", process.env.PLUM_TEST_PG_PASSWORD!],
      ["secondary repository password", secondaryPassword],
    ];
    if (existsSync(path.join(dir, "restic-rest-credentials"))) list.push(["append-only server password", file("restic-rest-credentials").split(":")[1]]);
    for (const [name, value] of list) expect(value.length, name).to.be.greaterThan(15);
    return list;
  }

  function assertNoSecretInArgv(): void {
    const leaks: string[] = [];
    for (const cmdline of seen)
      for (const [name, value] of secrets()) if (cmdline.includes(value)) leaks.push(`${name} in: ${cmdline.replace(value, "<" + name + ">")}`);
    expect(leaks, "secrets seen in argv").to.deep.equal([]);
  }

  const sawCommand = (pattern: RegExp) => [...seen].some((c) => pattern.test(c));

  before(async () => {
    // The second site: a plain (not append-only) rest server with basic auth, the credentials in its environment.
    const folder = runTempDir("plum-site-b-");
    const logFile = path.join(folder, "rclone.log");
    mkdirSync(path.join(folder, "repos"));
    secondaryServer = startChild(["rclone", "serve", "restic", "--addr", "127.0.0.1:0", "--config", "", "--log-file", logFile, path.join(folder, "repos")], {
      env: { ...process.env, RCLONE_USER: "tester", RCLONE_PASS: secondaryPassword },
      stdout: "ignore",
      timeoutMs: 30 * 60_000,
    });
    const port = await waitFor(
      "the test's rest server",
      async () => (existsSync(logFile) ? /Serving restic REST API on http:\/\/127\.0\.0\.1:(\d+)\//.exec(readFileSync(logFile, "utf8"))?.[1] : undefined),
      { timeoutMs: 15_000 },
    );
    secondaryUrl = `rest:http://tester:${secondaryPassword}@127.0.0.1:${port}/site-b/`;
    ({
      agent,
      dbs,
      stop: stopAgent,
    } = await startInProcessAgent((config) => {
      config.backup.secondary = secondaryUrl;
      (config.backup as { appendOnly?: boolean }).appendOnly = true;
    }));
    env = { PLUM_HOME: agent.config.home, ...dbs.env, PLUM_BACKUP_SECONDARY: secondaryUrl, PLUM_BACKUP_APPEND_ONLY: "true" };
  });

  beforeEach(() => seen.clear()); // each step is judged on what ran during it

  after(async () => {
    await extraCtx?.appendOnly?.stop();
    await stopAgent?.();
    if (secondaryServer?.pid) process.kill(secondaryServer.pid, "SIGTERM"); // the rest server this test started
    await secondaryServer?.exit;
  });

  it("backup and copy to the secondary (plumctl backup run through the agent): no secret in argv, the URL masked in its output", async () => {
    const masked = secondaryUrl.replace(`:${secondaryPassword}@`, ":***@");
    const { result: run, samples } = await sampledArgv(() => plumctl(["backup", "run"], env, 300_000), seen);
    assertNoSecretInArgv();
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/: succeeded/);
    expect(run.stderr).to.contain(`initialising the secondary repository ${masked} with the primary's chunker parameters`);
    expect(run.stdout + run.stderr).to.not.contain(secondaryPassword);
    expect(samples).to.be.greaterThan(20);
    for (const verb of ["backup", "init", "copy", "snapshots"])
      expect(sawCommand(new RegExp(`^restic (-r \\S+ )?${verb}\\b`)), `restic ${verb} seen`).to.equal(true);
    expect(sawCommand(/(^|[\s/])pg_dump /), "pg_dump seen").to.equal(true);
    expect(sawCommand(/plumctl\.js backup run$/), "plumctl seen").to.equal(true);
  });

  it("check of both repositories and a restore from the secondary: no secret in argv", async () => {
    // Both checks side by side, under one sampler.
    const { result: checks } = await sampledArgv(
      () => Promise.all([plumctl(["backup", "check"], env, 300_000), plumctl(["backup", "check", "--secondary"], env, 300_000)]),
      seen,
    );
    for (const result of checks) expect(result.code, result.stderr).to.equal(0);
    expect(sawCommand(/^restic (-r \S+ )?check\b/), "restic check seen").to.equal(true);
    const [set] = (
      await agent.sequelize.query("select id from backup_sets where status = 'succeeded' and kind = 'manual' order by started_at desc limit 1")
    )[0] as Array<{
      id: string;
    }>;
    const { result: restore } = await sampledArgv(() => plumctl(["restore", set.id, "--from", "secondary", "--yes"], env, 300_000), seen);
    assertNoSecretInArgv();
    expect(restore.code, restore.stderr + restore.stdout).to.equal(0);
    expect(sawCommand(/^restic (-r \S+ )?(restore|dump)\b/), "restic restore/dump seen").to.equal(true);
    expect(sawCommand(/(^|[\s/])pg_restore /), "pg_restore seen").to.equal(true);
  });

  it("an upgrade's stage step (the snapshot restored into staging from the repository, the release's plumctl migrate on it): no secret in argv", async () => {
    const ctx = backupContextFor({
      config: agent.config,
      log: createLogger("test-stage", { level: "silent" }),
      pg: agent.pg,
      opsSequelize: agent.sequelize,
      production: async () => ({ version: APP_VERSION, schemaVersion: "?" }),
    });
    extraCtx = ctx;
    const ops = backupOperationsFor(ctx);
    // The snapshot to stage from: the set the first step made (a fresh backup here would only add its minutes).
    const [set] = (await agent.sequelize.query("select id from backup_sets where status = 'succeeded' order by started_at desc limit 1"))[0] as Array<{
      id: string;
    }>;
    const staging = `${ctx.databases.product}_staging`;
    const host: StageHost = {
      staging: stagingDatabase({
        pg: ctx.pg,
        database: staging,
        scratch: `${staging}_before`,
        roles: ctx.config.database.roles,
        runJob: async (request, actor) => {
          if (request.kind !== "restore-copy") throw new Error(`stage asks for restore-copy jobs only, not ${request.kind}`);
          return ops.restoreCopy(request, actor, () => undefined);
        },
      }),
      commands: {
        migrate: () => runReleaseMigrate(agent.runtime, agent.catalogue.ref(APP_VERSION), connectionUrl(ctx.pg, staging), { timeoutMs: 120_000 }),
      },
    };
    const report: UpgradeReport = { steps: {} };
    const u = { id: 1, fromVersion: APP_VERSION, toVersion: APP_VERSION, snapshotSetId: set.id } as Upgrade;
    try {
      await sampledArgv(() => stageStep(host, u, report), seen);
    } finally {
      await host.staging.drop();
    }
    assertNoSecretInArgv();
    expect(report.dataGate?.before?.from).to.equal("restore");
    expect(sawCommand(/ migrate$/), "the release's plumctl migrate seen").to.equal(true);
    expect(sawCommand(/^rclone serve restic --append-only /), "the append-only server seen").to.equal(true);
  });

  it("the console's Backups page and the recovery kit show the secondary URL masked", async () => {
    const admin = await signInFirstAdmin(agent);
    const page = await admin.get("/backups");
    expect(page.status).to.equal(200);
    expect(page.text).to.not.contain(secondaryPassword);
    expect(page.text).to.contain(`<code>${secondaryUrl.replace(`:${secondaryPassword}@`, ":***@")}</code>`);
    expect(page.text).to.match(/Primary: <code>[^<]+<\/code> <span class="good">append-only<\/span>/);
    const kit = await plumctl(["backup", "recovery-kit"], env, 120_000);
    expect(kit.code, kit.stderr).to.equal(0);
    expect(kit.stdout).to.not.contain(secondaryPassword);
    expect(kit.stdout).to.contain("(credentials masked: the full URL is backup.secondary in plum.yaml");
  });
});
