import { expect } from "chai";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import type { Repository } from "../../backup/backup-types.ts";
import {
  EmptySnapshotError,
  PartialBackupError,
  RepositoryLockedError,
  RepositoryMissingError,
  ResticTimeoutError,
  WrongPasswordError,
} from "../../backup/restic/restic-errors.ts";
import { Restic } from "../../backup/restic/restic.ts";
import { waitFor } from "../../lib/wait.ts";
import { resticLocks } from "../support/backup-env.ts";

/** Endless input whose chunks differ (so restic keeps writing): for kills and deadlines. */
function endlessInput(): Readable {
  return new Readable({
    read() {
      this.push(randomBytes(1 << 20));
    },
  });
}

function collect(): { sink: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  return { sink, text: () => Buffer.concat(chunks).toString("utf8") };
}

describe("restic wrapper (real restic binary)", function () {
  this.timeout(120_000);
  let dir: string;
  let primary: Repository;
  let secondary: Repository;
  let source: string;
  const restic = new Restic();

  function passwordFile(name: string, password: string): string {
    const file = path.join(dir, name);
    writeFileSync(file, password, { mode: 0o600 });
    return file;
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "plum-restic-"));
    primary = { role: "primary", location: path.join(dir, "primary"), passwordFile: passwordFile("primary-password", randomBytes(16).toString("hex")) };
    secondary = {
      role: "secondary",
      location: path.join(dir, "site-b", "secondary"),
      passwordFile: passwordFile("secondary-password", randomBytes(16).toString("hex")),
    };
    source = path.join(dir, "files");
    mkdirSync(path.join(source, "vouchers"), { recursive: true });
    writeFileSync(path.join(source, "vouchers", "v1.txt"), "voucher one\n");
    writeFileSync(path.join(source, "readme.txt"), "hello\n");
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("initialises a repository and reports its id, chunker polynomial and key ids", async () => {
    expect(await restic.isInitialised(primary)).to.equal(false);
    await restic.init(primary);
    expect(await restic.isInitialised(primary)).to.equal(true);
    const info = await restic.repositoryInfo(primary);
    expect(info.id).to.match(/^[0-9a-f]{64}$/);
    expect(info.version).to.be.oneOf([1, 2]);
    expect(info.chunkerPolynomial).to.match(/^[0-9a-f]+$/);
    expect(info.keys).to.have.length(1);
    expect(info.keys[0].current).to.equal(true);
  });

  it("backs up a stream with tags and returns the full snapshot id, with progress on the way", async () => {
    const progress: number[] = [];
    const summary = await restic.backupStdin(primary, Readable.from([Buffer.from("dump bytes\n")]), {
      filename: "plum.dump",
      tags: ["plum-set", "set:s1", "part:db-plum"],
      onProgress: (p) => progress.push(p.percentDone),
    });
    expect(summary.snapshotId).to.match(/^[0-9a-f]{64}$/);
    expect(summary.bytesProcessed).to.equal(11);
    expect(progress.length).to.be.greaterThan(0);
    const [snapshot] = await restic.snapshots(primary, { tags: ["set:s1", "part:db-plum"] });
    expect(snapshot.id).to.equal(summary.snapshotId);
    expect(snapshot.tags).to.deep.equal(["plum-set", "set:s1", "part:db-plum"]);
    expect(snapshot.paths).to.deep.equal(["/plum.dump"]);
  });

  it("backs up paths, and selects snapshots by all of the tags given", async () => {
    const summary = await restic.backupPaths(primary, [source], { tags: ["plum-set", "set:s1", "part:files"] });
    expect(summary.filesProcessed).to.equal(2);
    expect((await restic.snapshots(primary, { tags: ["set:s1"] })).map((s) => s.id)).to.include(summary.snapshotId);
    expect(await restic.snapshots(primary, { tags: ["set:s1", "part:nothing"] })).to.deep.equal([]);
  });

  it("calls a backup with a missing source path partial (0.14 only warns), naming the snapshot it saved", async () => {
    const err = await restic.backupPaths(primary, [source, path.join(dir, "not-there")], { tags: ["partial"] }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(PartialBackupError);
    expect((err as PartialBackupError).message).to.contain("not-there");
    const id = (err as PartialBackupError).summary?.snapshotId;
    expect(id).to.match(/^[0-9a-f]{64}$/);
    expect(await restic.forget(primary, [id!])).to.deep.equal([id]);
  });

  it("refuses an empty stream with EmptySnapshotError", async () => {
    const err = await restic.backupStdin(primary, Readable.from([]), { filename: "empty.dump", tags: ["empty"] }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(EmptySnapshotError);
  });

  it("says WrongPasswordError for a wrong password and RepositoryMissingError where there is no repository", async () => {
    const wrong = { ...primary, passwordFile: passwordFile("wrong-password", "not the password") };
    expect(await restic.snapshots(wrong).catch((e: unknown) => e)).to.be.instanceOf(WrongPasswordError);
    const missing = { ...primary, location: path.join(dir, "nothing-here") };
    expect(await restic.snapshots(missing).catch((e: unknown) => e)).to.be.instanceOf(RepositoryMissingError);
    expect(await restic.isInitialised(missing)).to.equal(false);
  });

  /** A restic that first notes its arguments and RESTIC_ environment in a file. */
  function recordingRestic(name: string): { restic: Restic; seen: () => string } {
    const record = path.join(dir, `${name}.txt`);
    const shim = path.join(dir, name);
    writeFileSync(shim, `#!/bin/sh\necho "ARGS $*" >> ${record}\nenv | grep ^RESTIC_ >> ${record}\nexec restic "$@"\n`);
    chmodSync(shim, 0o755);
    return { restic: new Restic({ binary: shim }), seen: () => readFileSync(record, "utf8") };
  }

  it("never puts the password or the repository in argv: RESTIC_PASSWORD_FILE and RESTIC_REPOSITORY reach restic", async () => {
    const recording = recordingRestic("restic-password-shim");
    await recording.restic.snapshots(primary);
    const seen = recording.seen();
    expect(seen).to.match(/^ARGS snapshots --json$/m);
    expect(seen).to.contain(`RESTIC_REPOSITORY=${primary.location}`);
    expect(seen).to.contain(`RESTIC_PASSWORD_FILE=${primary.passwordFile}`);
    expect(seen).to.not.contain(readFileSync(primary.passwordFile, "utf8"));
    expect(seen).to.not.match(/^RESTIC_PASSWORD=/m);
  });

  it("makes a second site with the first one's chunker parameters and copies snapshots into it", async () => {
    await restic.init(secondary, { fromRepo: primary, copyChunkerParams: true });
    const [a, b] = [await restic.repositoryInfo(primary), await restic.repositoryInfo(secondary)];
    expect(b.chunkerPolynomial).to.equal(a.chunkerPolynomial);
    expect(b.id).to.not.equal(a.id);
    const ids = (await restic.snapshots(primary, { tags: ["set:s1"] })).map((s) => s.id);
    const copies = await restic.copy(primary, secondary, ids);
    expect(Object.keys(copies).sort()).to.deep.equal([...ids].sort());
    const inSecondary = await restic.snapshots(secondary, { tags: ["set:s1"] });
    expect(inSecondary.map((s) => s.id).sort()).to.deep.equal(Object.values(copies).sort());
    expect(await restic.copy(primary, secondary, ids)).to.deep.equal(copies); // copied before: skipped, same copies
  });

  it("checks a subset of the data", async () => {
    const result = await restic.check(primary, { readDataSubset: "1/7" });
    expect(result).to.include({ ok: true, readDataSubset: "1/7" });
    expect(result.output).to.include("no errors were found");
  });

  it("restores a snapshot (or only what is included) and dumps one file into a stream", async () => {
    const [files] = await restic.snapshots(primary, { tags: ["set:s1", "part:files"] });
    const target = path.join(dir, "restored");
    await restic.restore(primary, files.id, target, { include: [path.join(source, "vouchers")] });
    expect(readFileSync(path.join(target, source, "vouchers", "v1.txt"), "utf8")).to.equal("voucher one\n");
    expect(existsSync(path.join(target, source, "readme.txt"))).to.equal(false);
    const [dump] = await restic.snapshots(primary, { tags: ["set:s1", "part:db-plum"] });
    const out = collect();
    await restic.dump(primary, dump.id, "/plum.dump", out.sink);
    expect(out.text()).to.equal("dump bytes\n");
  });

  it("runs one command per repository at a time: a prune asked during a backup waits instead of hitting its lock", async () => {
    const input = new PassThrough();
    const backup = restic.backupStdin(primary, input, { filename: "slow.dump", tags: ["slow"] });
    const prune = restic.prune(primary);
    setTimeout(() => input.end(randomBytes(4096)), 1500);
    const [summary] = await Promise.all([backup, prune]);
    expect(await restic.forget(primary, [summary.snapshotId, "f".repeat(64)])).to.deep.equal([summary.snapshotId]);
  });

  it("finds the lock a SIGKILLed restic left (RepositoryLockedError) and removes it with unlock", async () => {
    const child = spawn("restic", ["-r", primary.location, "backup", "--stdin", "--stdin-filename", "killed.dump"], {
      env: { ...process.env, RESTIC_PASSWORD_FILE: primary.passwordFile },
      stdio: ["pipe", "ignore", "ignore"],
    });
    child.stdin.on("error", () => undefined);
    endlessInput().pipe(child.stdin);
    const locks = () => resticLocks(primary.location);
    await waitFor("restic's lock", async () => (locks().length > 0 ? true : undefined), { timeoutMs: 20_000 });
    const exited = new Promise((resolve) => child.on("close", resolve));
    process.kill(child.pid!, "SIGKILL");
    await exited;
    expect(locks()).to.have.length(1);
    expect(await restic.prune(primary).catch((e: unknown) => e)).to.be.instanceOf(RepositoryLockedError);
    await restic.unlock(primary);
    expect(locks()).to.have.length(0);
    await restic.prune(primary);
  });

  it("kills a command at its deadline, and the next command on that repository first runs unlock", async () => {
    const recording = recordingRestic("restic-deadline-shim");
    const err = await recording.restic
      .backupStdin(primary, endlessInput(), { filename: "endless.dump", tags: ["endless"], timeoutMs: 2000 })
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ResticTimeoutError);
    expect((err as ResticTimeoutError).message).to.contain("ran past its deadline of 2 s");
    const { output } = await recording.restic.prune(primary);
    expect(output.some((l) => l.startsWith("total prune:"))).to.equal(true);
    const verbs = [...recording.seen().matchAll(/^ARGS (\w+)/gm)].map((m) => m[1]);
    expect(verbs).to.deep.equal(["backup", "unlock", "prune"]);
  });
});
