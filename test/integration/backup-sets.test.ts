import { expect } from "chai";
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import pg from "pg";
import type { Sequelize } from "sequelize";
import type { BackupContext } from "../../backup/backup-context.ts";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import { SET_PARTS, setTags } from "../../backup/backup-types.ts";
import { takeStaleLockMark } from "../../backup/restic/restic-process.ts";
import { Restic } from "../../backup/restic/restic.ts";
import { backupSetCreator, configForBackup, DumpFailedError, exactRowCounts } from "../../backup/sets/backup-set-creator.ts";
import { checkSubsetFor, repositoryChecker } from "../../backup/sets/repository-checker.ts";
import { retentionApplier } from "../../backup/sets/retention.ts";
import { setCopier } from "../../backup/sets/set-copier.ts";
import { waitFor } from "../../lib/wait.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { standaloneContext } from "../../product/standalone-context.ts";
import { award, buildItem, buildMerchant, buildParticipant, buildProgramme } from "../support/factories.ts";
import { resticLocks, startBackupEnv } from "../support/backup-env.ts";

const restic = new Restic();

function collect(): { sink: Writable; buffer: () => Buffer } {
  const chunks: Buffer[] = [];
  return { sink: new Writable({ write: (chunk: Buffer, _enc, done) => (chunks.push(chunk), done()) }), buffer: () => Buffer.concat(chunks) };
}

async function dumpFile(ctx: BackupContext, snapshotId: string, file: string): Promise<Buffer> {
  const out = collect();
  await restic.dump(ctx.repos.primary, snapshotId, file, out.sink);
  return out.buffer();
}

function script(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

async function rowCounts(ctx: BackupContext, database: string): Promise<Record<string, number>> {
  const client = new pg.Client(clientConfig(ctx.pg, database));
  await client.connect();
  try {
    return await exactRowCounts(client);
  } finally {
    await client.end();
  }
}

describe("backup sets (real PostgreSQL, pg_dump and restic)", function () {
  this.timeout(180_000);
  let ctx: BackupContext;
  let product: Sequelize;
  let stop: () => Promise<void>;
  let scripts: string;
  let good: BackupSet;

  before(async () => {
    ({ ctx, product, stop } = await startBackupEnv({ secondary: true }));
    scripts = mkdtempSync(path.join(tmpdir(), "plum-set-scripts-"));
    const pctx = standaloneContext(product);
    await buildProgramme(pctx);
    const merchant = await buildMerchant(pctx);
    await buildItem(pctx, merchant.merchant.id);
    for (let i = 0; i < 3; i++) await award(pctx, (await buildParticipant(pctx)).id, 100 * (i + 1));
    mkdirSync(path.join(ctx.filesDir, "imports"), { recursive: true });
    writeFileSync(path.join(ctx.filesDir, "imports", "hris.csv"), "employee_id,name\nE-1,Ann\n");
    writeFileSync(path.join(ctx.filesDir, "logo.png"), randomBytes(2048));
  });

  after(async () => {
    await stop();
    rmSync(scripts, { recursive: true, force: true });
  });

  it("makes a set of real data: three tagged snapshots, and a manifest with exact row counts and file hashes", async () => {
    const parts: string[] = [];
    good = await backupSetCreator({ ctx, kind: "manual", startedBy: "test", onProgress: (p) => parts.push(p.part) });
    expect(good.id).to.match(/^\d{8}T\d{6}-[0-9a-f]{6}$/);
    expect(good.status).to.equal("succeeded");
    expect(new Set(parts)).to.deep.equal(new Set(SET_PARTS));
    for (const part of SET_PARTS) expect(good.primarySnapshots[part]).to.match(/^[0-9a-f]{64}$/);

    const snapshots = await restic.snapshots(ctx.repos.primary, { tags: [`set:${good.id}`] });
    expect(snapshots).to.have.length(3);
    for (const part of SET_PARTS) {
      const snapshot = snapshots.find((s) => s.id === good.primarySnapshots[part]);
      expect(snapshot?.tags, part).to.deep.equal(setTags(good, part));
    }
    expect(good.schemaVersion).to.not.equal("none");

    const manifest = good.manifest!;
    const productCounts = await rowCounts(ctx, ctx.databases.product);
    expect(manifest.databases["db-plum"].tables).to.deep.equal(productCounts);
    expect(manifest.databases["db-plum"].tables).to.include({ participants: 3, merchants: 1, catalogue_items: 1, programmes: 1 });
    expect(manifest.databases["db-plum"].tables.ledger_entries).to.be.at.least(3);
    expect(manifest.databases["db-ops"].tables).to.have.property("backup_sets");
    expect(manifest.files.map((f) => f.path)).to.deep.equal(["imports/hris.csv", "logo.png"]);
    const logo = manifest.files.find((f) => f.path === "logo.png")!;
    expect(logo.sha256).to.equal(
      createHash("sha256")
        .update(readFileSync(path.join(ctx.filesDir, "logo.png")))
        .digest("hex"),
    );
    expect(logo.size).to.equal(2048);
    expect(Number(good.bytesProcessed)).to.be.greaterThan(2048);

    // The files snapshot carries the same manifest and the config; the dumps are real custom-format dumps.
    const staging = path.join(ctx.workDir, "set-staging");
    expect(JSON.parse((await dumpFile(ctx, good.primarySnapshots.files!, `${staging}/manifest.json`)).toString())).to.deep.equal(manifest);
    expect((await dumpFile(ctx, good.primarySnapshots.files!, `${staging}/plum.yaml`)).toString()).to.equal(readFileSync(ctx.configFile, "utf8"));
    const dumped = path.join(scripts, "plum.dump");
    writeFileSync(dumped, await dumpFile(ctx, good.primarySnapshots["db-plum"]!, "/plum.dump"));
    expect(execFileSync("pg_restore", ["--list", dumped], { encoding: "utf8" })).to.contain("TABLE DATA public participants");

    const [evidence] = await ctx.evidence.list({ kind: "backup", limit: 1 });
    expect(evidence).to.deep.include({ outcome: "success", set_id: good.id, repository: "primary" });
  });

  it("backs up plum.yaml as written, but never a password written into database.url", () => {
    const plain = "# mine\nhttp:\n  port: 8080 # public\n";
    expect(configForBackup(plain)).to.equal(plain);
    const masked = configForBackup("database:\n  url: postgres://plum:s3cret@db.internal:5432/postgres # theirs\n");
    expect(masked).to.not.contain("s3cret");
    expect(masked).to.contain("postgres://plum:REDACTED@db.internal:5432/postgres");
  });

  it("fails the set when pg_dump dies half-way: the snapshot restic made of the partial stream is forgotten", async () => {
    // A real dump cut after 4 KiB, then the error pg_dump prints when the server goes away.
    const pgDump = script(scripts, "pg_dump-cut", `pg_dump "$@" | head -c 4096\necho "pg_dump: error: connection to server was lost (test)" >&2\nexit 1`);
    const err = await backupSetCreator({ ctx, kind: "scheduled", startedBy: "test", pgDump }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(DumpFailedError);
    expect((err as Error).message).to.match(/^pg_dump of database "t_plum_\w+" exited with 1: pg_dump: error: connection to server was lost \(test\)$/);

    const failed = (await ctx.sets.findAll({ where: { status: "failed" } })).at(-1)!;
    expect(failed.error).to.contain("connection to server was lost (test)");
    expect(failed.primarySnapshots).to.deep.equal({});
    expect(await restic.snapshots(ctx.repos.primary, { tags: [`set:${failed.id}`] })).to.deep.equal([]);
    const [evidence] = await ctx.evidence.list({ kind: "backup", limit: 1 });
    expect(evidence).to.deep.include({ outcome: "failure", set_id: failed.id });
    // restic did save the partial stream (the 0.14 trap): that is the snapshot that was forgotten.
    expect((evidence.detail as { snapshotsForgotten: string[] }).snapshotsForgotten).to.have.length(1);
  });

  it("fails the set when its restic is SIGKILLed mid-backup, leaving neither snapshot nor lock; the next run succeeds", async () => {
    const pids = path.join(scripts, "restic-pids");
    const recording = new Restic({ binary: script(scripts, "restic-recording", `echo "$$ $*" >> ${pids}\nexec restic "$@"`) });
    const slowDump = script(scripts, "pg_dump-slow", `sleep 4\nexec pg_dump "$@"`); // restic waits on stdin, holding its lock
    const run = backupSetCreator({ ctx, kind: "scheduled", startedBy: "test", restic: recording, pgDump: slowDump }).catch((e: unknown) => e);
    const pid = await waitFor(
      "restic backup holding its lock",
      async () => {
        const line = readFileSync(pids, "utf8")
          .split("\n")
          .find((l) => l.includes(" backup "));
        return line && resticLocks(ctx.repos.primary.location).length > 0 ? Number(line.split(" ")[0]) : undefined;
      },
      { timeoutMs: 20_000 },
    );
    process.kill(pid, "SIGKILL");
    const err = await run;
    expect((err as Error).message).to.match(/^restic backup on .* failed \(killed by SIGKILL\)/);
    const failed = (await ctx.sets.findAll({ where: { status: "failed" }, order: [["startedAt", "ASC"]] })).at(-1)!;
    expect(failed.error).to.contain("killed by SIGKILL");
    expect(await restic.snapshots(ctx.repos.primary, { tags: [`set:${failed.id}`] })).to.deep.equal([]);
    expect(resticLocks(ctx.repos.primary.location)).to.deep.equal([]);
    expect((await backupSetCreator({ ctx, kind: "scheduled", startedBy: "test" })).status).to.equal("succeeded");
  });

  it("clears the stale lock a restic of an earlier agent left (killed with SIGKILL), then makes the set", async () => {
    const child = spawn("restic", ["-r", ctx.repos.primary.location, "backup", "--stdin", "--stdin-filename", "x"], {
      env: { ...process.env, RESTIC_PASSWORD_FILE: ctx.repos.primary.passwordFile },
      stdio: ["pipe", "ignore", "ignore"],
    });
    child.stdin.on("error", () => undefined);
    new Readable({
      read() {
        this.push(randomBytes(1 << 16));
      },
    }).pipe(child.stdin);
    await waitFor("the other restic's lock", async () => (resticLocks(ctx.repos.primary.location).length > 0 ? true : undefined), { timeoutMs: 20_000 });
    const exited = new Promise((resolve) => child.on("close", resolve));
    process.kill(child.pid!, "SIGKILL");
    await exited;
    takeStaleLockMark(ctx.repos.primary.location); // nothing of this process knew that restic
    expect(resticLocks(ctx.repos.primary.location)).to.have.length(1);
    const set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    expect(set.status).to.equal("succeeded");
    expect(resticLocks(ctx.repos.primary.location)).to.deep.equal([]);
  });

  it("copies every succeeded set to the secondary, found there again by tags, once", async () => {
    const copied = await setCopier(ctx);
    const succeeded = await ctx.sets.findAll({ where: { status: "succeeded" } });
    expect(copied.map((s) => s.id).sort()).to.deep.equal(succeeded.map((s) => s.id).sort());
    const secondary = ctx.repos.secondary!;
    expect((await restic.repositoryInfo(secondary)).chunkerPolynomial).to.equal((await restic.repositoryInfo(ctx.repos.primary)).chunkerPolynomial);
    await good.reload();
    expect(good.copiedAt).to.be.instanceOf(Date);
    const copies = await restic.snapshots(secondary, { tags: [`set:${good.id}`] });
    expect(copies).to.have.length(3);
    for (const part of SET_PARTS) {
      const copy = copies.find((s) => s.id === good.secondarySnapshots![part]);
      expect(copy?.tags).to.deep.equal(setTags(good, part));
      expect(copy?.original).to.equal(good.primarySnapshots[part]);
    }
    const evidence = await ctx.evidence.list({ kind: "copy" });
    expect(
      evidence
        .filter((e) => e.outcome === "success")
        .map((e) => e.set_id)
        .sort(),
    ).to.deep.equal(succeeded.map((s) => s.id).sort());
    expect(await setCopier(ctx)).to.deep.equal([]);
  });

  it("checks a repository with the day's seventh of the data and records it", async () => {
    const now = new Date("2026-11-23T03:30:00Z");
    const result = await repositoryChecker(ctx, "secondary", { now });
    expect(result).to.include({ ok: true, readDataSubset: checkSubsetFor(now) });
    expect(checkSubsetFor(now)).to.match(/^[1-7]\/7$/);
    expect(checkSubsetFor(new Date("2026-11-24T03:30:00Z"))).to.not.equal(checkSubsetFor(now));
    const [evidence] = await ctx.evidence.list({ kind: "check", limit: 1 });
    expect(evidence).to.deep.include({ outcome: "success", repository: "secondary" });
    expect(evidence.detail).to.include({ subset: checkSubsetFor(now), errorsFound: false });
  });

  it("applies retention over whole sets in both repositories, and marks the others forgotten", async () => {
    // Place the succeeded sets on chosen days: with keepDaily 2 only the newest of each of the last two days stays.
    const sets = await ctx.sets.findAll({ where: { status: "succeeded" }, order: [["id", "ASC"]] });
    expect(sets.length).to.be.at.least(3);
    const newest = sets.at(-1)!;
    const dayBefore = sets.at(-2)!;
    await newest.update({ startedAt: new Date("2026-11-23T09:00:00Z") });
    for (const [i, set] of sets.slice(0, -1).entries()) await set.update({ startedAt: new Date(Date.UTC(2026, 10, 20, 8 + i)) });
    ctx.config.backup.retention = { keepHourly: 0, keepDaily: 2, keepWeekly: 0, keepMonthly: 0 };
    const gone = sets.slice(0, -2).map((s) => s.id);

    const outcome = await retentionApplier(ctx, { now: new Date("2026-11-23T12:00:00Z") });
    expect(outcome.keep).to.deep.equal([newest.id, dayBefore.id]);
    expect(outcome.forget.sort()).to.deep.equal([...gone].sort());
    for (const repo of [ctx.repos.primary, ctx.repos.secondary!]) {
      const left = new Set((await restic.snapshots(repo, { tags: ["plum-set"] })).flatMap((s) => s.tags.filter((t) => t.startsWith("set:"))));
      expect([...left].sort(), repo.role).to.deep.equal([`set:${dayBefore.id}`, `set:${newest.id}`].sort());
    }
    expect(outcome.snapshotsForgotten).to.deep.equal({ primary: gone.length * 3, secondary: gone.length * 3 });
    for (const id of gone) expect((await ctx.sets.findByPk(id))?.status).to.equal("forgotten");
    const [evidence] = await ctx.evidence.list({ kind: "forget", limit: 1 });
    expect(evidence.outcome).to.equal("success");
    expect(evidence.detail).to.deep.include({ kept: [newest.id, dayBefore.id] });
  });

  it("does not make a fresh primary where sets were stored before (an unmounted disk), and says so", async () => {
    const aside = `${ctx.repos.primary.location}-aside`;
    renameSync(ctx.repos.primary.location, aside);
    try {
      const err = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" }).catch((e: unknown) => e);
      expect((err as Error).message).to.match(/^the primary repository .* does not exist, yet \d+ backup sets were stored in it$/);
      expect(existsSync(ctx.repos.primary.location)).to.equal(false);
      const [evidence] = await ctx.evidence.list({ kind: "backup", limit: 1 });
      expect(evidence.outcome).to.equal("failure");
    } finally {
      renameSync(aside, ctx.repos.primary.location);
    }
  });
});
