import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import { backupContextFor, type BackupContext } from "../../backup/backup-context.ts";
import { tableCountChecks } from "../../backup/restore/manifest-verifier.ts";
import { RestoreJournal, type RestoreRow } from "../../backup/restore/restore-journal.ts";
import { assertSafeToCreateProductDatabase, restoreRecovery, type Recovery } from "../../backup/restore/restore-recovery.ts";
import { rowCountsOf } from "../../backup/restore/whole-databases.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { startChild } from "../../lib/child-process.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { waitFor } from "../../lib/wait.ts";
import type { ProductContext } from "../../product/product-context.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { backendsGone, CrashPoints, killTree } from "../support/crash-points.ts";
import { compiledPlumctl } from "../support/compiled-plumctl.ts";
import { buildParticipant } from "../support/factories.ts";
import { databaseNames, fileDigests, productContextOn, seedProductData, tableDigests } from "../support/restore-fixtures.ts";

type Digests = { tables: Awaited<ReturnType<typeof tableDigests>>; files: Record<string, string> };
type Pause = { at: string } | { whenCopyDatabaseExists: true };

/**
 * A restore over production SIGKILLed at every step (in a process of its own, stopped at an exact point by a
 * test-only trigger in plum_ops), then recovered from a fresh start that reads only the journal and what
 * exists, as the agent's start does: it ends in exactly one state, the old data or the restored data, never a
 * mix and never an empty database, with no copy or folder left behind and every chain verifying.
 */
describe("a restore killed at any step is finished or undone from the journal alone", function () {
  this.timeout(240_000);
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  let product: ProductContext;
  let set: BackupSet;
  let atSet: Digests;
  let points: CrashPoints;
  let damages = 0;

  before(async () => {
    env = await startBackupEnv();
    ctx = env.ctx;
    product = productContextOn(env.product);
    await seedProductData(product, ctx.filesDir);
    set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    atSet = await digests();
    points = await CrashPoints.install(ctx.pg, ctx.databases.ops);
  });
  after(async () => {
    await points?.close();
    await env?.stop();
  });

  async function digests(): Promise<Digests> {
    return { tables: await tableDigests(ctx.pg, ctx.databases.product), files: await fileDigests(ctx.filesDir) };
  }

  /** Production moves on after the set: a new participant and a new file, so old and restored differ. */
  async function writeAfterTheSet(): Promise<Digests> {
    damages += 1;
    await buildParticipant(product, { name: `written after the set ${damages}` });
    writeFileSync(path.join(ctx.filesDir, `after-the-set-${damages}.txt`), `${damages}\n`);
    const now = await digests();
    expect(now).to.not.deep.equal(atSet);
    return now;
  }

  /** The process a restore runs in: `plumctl restore` / `plumctl drill run` with no agent, or a restore copy's. */
  async function restoreCommand(mode: "restore" | "drill" | "copy", which: "both" | "db" | "files"): Promise<string[]> {
    if (mode === "copy") return [process.execPath, "--import", "tsx", path.join(APP_ROOT, "test", "support", "restore-copy-child.ts"), set.id];
    const plumctl = [process.execPath, await compiledPlumctl()];
    if (mode === "drill") return [...plumctl, "drill", "run", "--set", set.id];
    return [...plumctl, "restore", set.id, ...(which === "both" ? [] : [`--${which}`]), "--yes"];
  }

  /** Run the restore in a process of its own, SIGKILL it at the pause, and let go of what it left half-written. */
  async function killRestoreAt(pause: Pause, which: "both" | "db" | "files" = "both", mode: "restore" | "drill" | "copy" = "restore"): Promise<string[]> {
    let output = "";
    if ("at" in pause) await points.pauseAt(pause.at);
    const child = startChild(await restoreCommand(mode, which), {
      cwd: APP_ROOT,
      env: { ...process.env, ...env.dbs.env, PLUM_HOME: env.home },
      stdout: (line) => (output += `${line}\n`),
      stdin: "ignore",
      timeoutMs: 180_000,
    });
    void child.exit.then((e) => (output += e.stderr));
    if ("at" in pause) await points.paused(child.exit, () => output);
    else
      await waitFor(
        "the restore's copy database to exist",
        async () => ((await databaseNames(ctx.pg, `${ctx.databases.product}\\_restore\\_%`)).length > 0 ? true : undefined),
        { timeoutMs: 120_000, firstDelayMs: 10, maxDelayMs: 20 },
      );
    killTree(child.pid!);
    expect((await child.exit).signal, output).to.equal("SIGKILL");
    await points.abortPausedWrite();
    await backendsGone(ctx.pg, ctx.databases.ops);
    return output.trim().split("\n").filter(Boolean);
  }

  /** What a restarted agent does first, on a context of its own (nothing of the killed process survives). */
  async function recoverAsAtStart(): Promise<Recovery> {
    const ops = openSequelize(clientConfig(ctx.pg, ctx.databases.ops), { poolMax: 3 });
    try {
      const fresh = backupContextFor({ config: ctx.config, log: ctx.log, pg: ctx.pg, opsSequelize: ops, production: ctx.production });
      const recovery = await restoreRecovery({ ctx: fresh, by: "test restart" });
      await assertSafeToCreateProductDatabase(fresh);
      return recovery;
    } finally {
      await ops.close();
    }
  }

  async function newestRestore(): Promise<RestoreRow> {
    const [row] = await new RestoreJournal(ctx.opsSequelize).history(1);
    return row;
  }

  async function expectAtRest(expected: Digests, restore: RestoreRow, action: "undone" | "finished", interrupted?: string): Promise<void> {
    const now = await digests();
    expect(now.tables, "the product database holds exactly one state").to.deep.equal(expected.tables);
    expect(now.files, "the files directory holds exactly one state").to.deep.equal(expected.files);
    if (action === "finished") {
      const counts = tableCountChecks(set.manifest!.databases["db-plum"].tables, await rowCountsOf(ctx.pg, ctx.databases.product));
      expect(counts.filter((c) => !c.passed)).to.deep.equal([]);
    }
    const row = (await new RestoreJournal(ctx.opsSequelize).get(restore.id))!;
    expect(row.status).to.equal(action === "finished" ? "succeeded" : "failed");
    expect(row.finishedAt).to.be.an.instanceOf(Date);
    expect(row.recovery).to.include({ by: "test restart", action });
    if (action === "undone")
      expect(row.error).to.equal(`interrupted ${interrupted} and undone by test restart: production has the data it had before the restore`);
    // No copy, nothing kept, no folder beside the files directory, no set left running.
    expect(await databaseNames(ctx.pg, `${ctx.databases.product}\\_%`)).to.deep.equal([]);
    const beside = readdirSync(path.dirname(ctx.filesDir)).filter((name) => name.startsWith(`${path.basename(ctx.filesDir)}.`));
    expect(beside).to.deep.equal([]);
    expect(await ctx.sets.count({ where: { status: "running" } })).to.equal(0);
    expect((await new RestoreJournal(ctx.opsSequelize).verify()).ok, "the restore journal's chain").to.equal(true);
    expect((await ctx.evidence.verify()).ok, "the evidence chain").to.equal(true);
    const [evidence] = await ctx.evidence.list({ kind: "restore", limit: 1 });
    expect(evidence).to.include({ outcome: action === "finished" ? "success" : "failure", set_id: set.id });
    expect(evidence.detail).to.include({ restoreId: restore.id, interrupted: true, recovery: action });
    if (interrupted) expect(evidence.detail.interruptedAt).to.equal(interrupted);
  }

  const OLD: Array<[string, Pause, string]> = [
    ["before the pre-restore set starts", { at: "journal:pre-restore-set:started" }, "before its first step"],
    ["while the pre-restore set is being recorded (all its parts stored)", { at: "set:succeeded" }, "during pre-restore-set"],
    ["after the pre-restore set, before the journal says so", { at: "journal:pre-restore-set:done" }, "during pre-restore-set"],
    ["before the copy starts", { at: "journal:copy:started" }, "after pre-restore-set"],
    ["while pg_restore fills the copy", { whenCopyDatabaseExists: true }, "during copy"],
    ["after the copy is verified, before the journal says so", { at: "journal:copy:done" }, "during copy"],
    ["before the product is stopped", { at: "journal:stop-product:started" }, "after copy"],
    ["after the product stopped", { at: "journal:stop-product:done" }, "during stop-product"],
    ["before the database swap", { at: "journal:swap-database:started" }, "after stop-product"],
    ["after the database swap committed, before the journal says so", { at: "journal:swap-database:done" }, "during swap-database"],
    ["after the database swap, before the files are kept", { at: "journal:keep-files:started" }, "after swap-database"],
    ["between the two renames of the files directory (no files directory exists)", { at: "journal:keep-files:done" }, "during keep-files"],
    ["before the restored files are moved in", { at: "journal:place-files:started" }, "after keep-files"],
    ["after the restored files were moved in, before the journal says so", { at: "journal:place-files:done" }, "during place-files"],
    ["everything swapped, before the product is started on it", { at: "journal:start-product:started" }, "after place-files"],
  ];
  for (const [when, pause, interrupted] of OLD) {
    it(`killed ${when}: undone, production has its old data`, async () => {
      const before = await writeAfterTheSet();
      await killRestoreAt(pause);
      const restore = await newestRestore();
      expect(restore.status, "the killed restore is unfinished").to.equal("running");

      const recovery = await recoverAsAtStart();

      expect(recovery.restores.map((r) => [r.id, r.action, r.interruptedAt])).to.deep.equal([[restore.id, "undone", interrupted]]);
      await expectAtRest(before, restore, "undone", interrupted);
      if ("at" in pause && pause.at === "set:succeeded") {
        const preRestore = (await ctx.sets.findAll({ where: { kind: "pre-restore" }, order: [["startedAt", "DESC"]], limit: 1 }))[0];
        expect(preRestore.status, "a set stored whole is reconciled as succeeded").to.equal("succeeded");
        expect(Object.keys(preRestore.primarySnapshots).sort()).to.deep.equal(["db-ops", "db-plum", "files"]);
        expect(recovery.sets).to.deep.equal([`backup set ${preRestore.id} was left unfinished with every part in the repository: marked succeeded`]);
      }
    });
  }

  const RESTORED: Array<[string, Pause]> = [
    ["after the product was started on the restored data, before the journal says so", { at: "journal:start-product:done" }],
    ["before what was kept is discarded", { at: "journal:discard:started" }],
    ["after the discard, before the journal says so", { at: "journal:discard:done" }],
  ];
  for (const [when, pause] of RESTORED) {
    it(`killed ${when}: finished, production has the restored data`, async () => {
      await writeAfterTheSet();
      await killRestoreAt(pause);
      const restore = await newestRestore();

      const recovery = await recoverAsAtStart();

      expect(recovery.restores.map((r) => [r.id, r.action])).to.deep.equal([[restore.id, "finished"]]);
      await expectAtRest(atSet, restore, "finished");
    });
  }

  it("a database-only restore killed after its swap committed: undone, the files never touched", async () => {
    const before = await writeAfterTheSet();
    await killRestoreAt({ at: "journal:swap-database:done" }, "db");
    const restore = await newestRestore();
    await recoverAsAtStart();
    await expectAtRest(before, restore, "undone", "during swap-database");
  });

  it("a files-only restore killed between its two renames, with an empty files directory made meanwhile: undone", async () => {
    const before = await writeAfterTheSet();
    await killRestoreAt({ at: "journal:keep-files:done" }, "files");
    const restore = await newestRestore();
    expect(existsSync(ctx.filesDir)).to.equal(false);
    // The agent's start makes PLUM_HOME's folders (lib/home.ts) before it recovers.
    mkdirSync(ctx.filesDir);
    await recoverAsAtStart();
    await expectAtRest(before, restore, "undone", "during keep-files");
  });

  it("a drill killed while its suites run: its scratch database and folder go, the drill is recorded as failed", async () => {
    await killRestoreAt({ at: "journal:suites:started" }, "both", "drill");
    const drill = await newestRestore();
    expect(drill).to.include({ kind: "drill", status: "running" });
    expect(await databaseNames(ctx.pg, `${ctx.databases.product}\\_drill\\_%`)).to.have.length(1);

    const recovery = await recoverAsAtStart();

    expect(recovery.restores.map((r) => [r.kind, r.action, r.interruptedAt])).to.deep.equal([["drill", "undone", "after copy"]]);
    expect(await databaseNames(ctx.pg, `${ctx.databases.product}\\_%`)).to.deep.equal([]);
    expect(existsSync(ctx.workDir) ? readdirSync(ctx.workDir).filter((n) => n.startsWith("drill-")) : []).to.deep.equal([]);
    const [evidence] = await ctx.evidence.list({ kind: "drill", limit: 1 });
    expect(evidence).to.include({ outcome: "failure", set_id: set.id });
    expect(evidence.detail).to.include({ restoreId: drill.id, interrupted: true, interruptedAt: "after copy", verified: false });
    expect((await new RestoreJournal(ctx.opsSequelize).verify()).ok).to.equal(true);
  });

  it("a restore copy (the upgrade's staging) killed after it was verified: the copy is dropped, recorded as failed", async () => {
    await killRestoreAt({ at: "journal:copy:done" }, "both", "copy");
    const copy = await newestRestore();
    expect(copy).to.include({ kind: "copy", status: "running", purpose: "staging" });
    expect(await databaseNames(ctx.pg, `${ctx.databases.product}\\_staging`)).to.have.length(1);

    await recoverAsAtStart();

    expect(await databaseNames(ctx.pg, `${ctx.databases.product}\\_%`)).to.deep.equal([]);
    const [evidence] = await ctx.evidence.list({ kind: "restore", limit: 1 });
    expect(evidence).to.include({ outcome: "failure", set_id: set.id });
    expect(evidence.detail).to.include({ restoreId: copy.id, purpose: "staging", interrupted: true, recovery: "undone" });
  });
});
