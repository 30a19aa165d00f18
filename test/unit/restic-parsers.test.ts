import { expect } from "chai";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  displayLocation,
  EmptySnapshotError,
  RepositoryLockedError,
  RepositoryMissingError,
  ResticError,
  resticErrorFor,
  WrongPasswordError,
} from "../../backup/restic/restic-errors.ts";
import {
  meaningfulLines,
  parseBackupLine,
  parseCheckOutput,
  parseKeyList,
  parseRepositoryConfig,
  parseSnapshots,
  skippedSourcePaths,
} from "../../backup/restic/restic-output.ts";
import { displayCommand, resticEnvironment } from "../../backup/restic/restic-process.ts";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "restic");
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), "utf8");
const lines = (name: string) => fixture(name).split("\n").filter(Boolean);
const COMMAND = ["restic", "-r", "/srv/repo", "snapshots", "--json"];

describe("restic output parsers (captured restic 0.14 output)", () => {
  it("reads a backup of paths: status lines, then a summary with the short snapshot id of 0.14", () => {
    const parsed = lines("backup-paths.stdout.jsonl").map(parseBackupLine);
    expect(parsed.map((p) => p.type)).to.deep.equal(["status", "summary"]);
    const summary = parsed[1].type === "summary" ? parsed[1].summary : undefined;
    expect(summary).to.include({ filesNew: 2, filesChanged: 0, filesUnmodified: 0, filesProcessed: 2, bytesProcessed: 8 });
    expect(summary?.snapshotId).to.match(/^[0-9a-f]{8}$/);
    expect(summary?.bytesAdded).to.be.greaterThan(0);
    expect(summary?.durationSeconds).to.be.a("number");
  });

  it("reads a stdin backup's status with percent done and total files", () => {
    const [status] = lines("backup-stdin.stdout.jsonl").map(parseBackupLine);
    expect(status).to.deep.equal({
      type: "status",
      progress: { percentDone: 0, secondsElapsed: undefined, filesDone: undefined, totalFiles: 1, bytesDone: undefined, totalBytes: undefined },
    });
    const summary = parseBackupLine(lines("backup-stdin.stdout.jsonl")[1]);
    expect(summary.type === "summary" && summary.summary.bytesProcessed).to.equal(300000);
  });

  it("takes the full snapshot id restic 0.15+ prints as it is", () => {
    const id = "a".repeat(64);
    const line = JSON.stringify({
      message_type: "summary",
      files_new: 1,
      files_changed: 0,
      files_unmodified: 0,
      dirs_new: 0,
      dirs_changed: 0,
      dirs_unmodified: 0,
      data_blobs: 1,
      tree_blobs: 1,
      data_added: 10,
      data_added_packed: 9,
      total_files_processed: 1,
      total_bytes_processed: 10,
      total_duration: 0.2,
      backup_start: "2026-01-01T00:00:00Z",
      backup_end: "2026-01-01T00:00:01Z",
      snapshot_id: id,
    });
    const parsed = parseBackupLine(line);
    expect(parsed.type === "summary" && parsed.summary.snapshotId).to.equal(id);
  });

  it("sets aside lines that are not JSON messages, and rejects a summary that lost its fields", () => {
    expect(parseBackupLine("Files:           2 new,     0 changed")).to.deep.equal({ type: "other", line: "Files:           2 new,     0 changed" });
    expect(parseBackupLine('{"message_type":"verbose_status","action":"new"}').type).to.equal("other");
    expect(() => parseBackupLine('{"message_type":"summary","files_new":1}')).to.throw();
  });

  it("reads the JSON error restic prints for an empty stdin, and the empty-snapshot failure as EmptySnapshotError", () => {
    const stderr = fixture("backup-stdin-empty.stderr.txt");
    const [errorLine] = stderr.split("\n").filter((l) => l.startsWith("{"));
    expect(parseBackupLine(errorLine)).to.deep.include({ type: "error", item: "/plum.dump", during: "archival" });
    expect(
      lines("backup-stdin-empty.stdout.jsonl")
        .map(parseBackupLine)
        .map((p) => p.type),
    ).to.deep.equal(["status"]);
    expect(resticErrorFor(COMMAND, 1, stderr)).to.be.instanceOf(EmptySnapshotError);
  });

  it("finds the source path 0.14 skips with only a warning", () => {
    expect(skippedSourcePaths(fixture("backup-missing-source.stderr.txt"))).to.deep.equal(["/tmp/rcap/not-there"]);
    expect(skippedSourcePaths("")).to.deep.equal([]);
  });

  it("reads snapshots with full ids, tags and times; none is an empty list", () => {
    const snapshots = parseSnapshots(fixture("snapshots.json"));
    expect(snapshots).to.have.length(3);
    expect(snapshots[0].id).to.match(/^[0-9a-f]{64}$/);
    expect(snapshots[0].shortId).to.equal(snapshots[0].id.slice(0, 8));
    expect(snapshots[0].tags).to.deep.equal(["plum-set", "set:20261123T082800-a1b2c3", "part:files"]);
    expect(snapshots[0].time.toISOString()).to.equal("2026-11-23T08:32:05.568Z");
    expect(snapshots[2].tags).to.deep.equal([]);
    expect(parseSnapshots(fixture("snapshots-none.json"))).to.deep.equal([]);
    expect(parseSnapshots("null")).to.deep.equal([]);
  });

  it("reads the original id of a copied snapshot", () => {
    const [copy] = parseSnapshots(fixture("snapshots-copied.json"));
    const [source] = parseSnapshots(fixture("snapshots.json"));
    expect(copy.original).to.equal(source.id);
    expect(copy.id).to.not.equal(source.id);
  });

  it("reads the repository config and its keys", () => {
    const config = parseRepositoryConfig(fixture("cat-config.json"));
    expect(config.version).to.equal(2);
    expect(config.id).to.match(/^[0-9a-f]{64}$/);
    expect(config.chunkerPolynomial).to.match(/^[0-9a-f]+$/);
    const keys = parseKeyList(fixture("key-list.json"));
    expect(keys).to.have.length(1);
    expect(keys[0]).to.include({ current: true, hostName: "vm", userName: "root" });
    expect(keys[0].id).to.match(/^[0-9a-f]{8}$/);
  });

  it("reads check's verdict from its text: no errors, or errors found", () => {
    const ok = parseCheckOutput(fixture("check-ok.stdout.txt"), fixture("check-ok.stderr.txt"), "2/7");
    expect(ok.ok).to.equal(true);
    expect(ok.readDataSubset).to.equal("2/7");
    expect(ok.output).to.include("no errors were found");
    expect(ok.output.some((l) => l.includes("100.00%"))).to.equal(false);
    const bad = parseCheckOutput(fixture("check-errors.stdout.txt"), fixture("check-errors.stderr.txt"), "1/1");
    expect(bad.ok).to.equal(false);
    expect(bad.output).to.include("Fatal: repository contains errors");
  });

  it("keeps prune's figures and drops its progress bars", () => {
    const out = meaningfulLines(fixture("prune.stdout.txt"));
    expect(out.some((l) => l.startsWith("total prune:"))).to.equal(true);
    expect(out.some((l) => l.startsWith("["))).to.equal(false);
  });
});

describe("restic errors", () => {
  it("maps 0.14's stderr to typed errors", () => {
    expect(resticErrorFor(COMMAND, 1, fixture("wrong-password.stderr.txt"))).to.be.instanceOf(WrongPasswordError);
    expect(resticErrorFor(COMMAND, 1, fixture("missing-repository.stderr.txt"))).to.be.instanceOf(RepositoryMissingError);
    expect(resticErrorFor(COMMAND, 1, fixture("locked.stderr.txt"))).to.be.instanceOf(RepositoryLockedError);
    const other = resticErrorFor(COMMAND, 1, "Fatal: something else\n");
    expect(other.constructor).to.equal(ResticError);
  });

  it("maps the exit codes of restic 0.17+ whatever the text, and reads its JSON exit_error", () => {
    const exitError = '{"message_type":"exit_error","code":12,"message":"Fatal: wrong password or no key found"}\n';
    const err = resticErrorFor(COMMAND, 12, exitError);
    expect(err).to.be.instanceOf(WrongPasswordError);
    expect(err.message).to.equal("restic snapshots on /srv/repo failed (exit 12): wrong password or no key found");
    expect(resticErrorFor(COMMAND, 10, "")).to.be.instanceOf(RepositoryMissingError);
    expect(resticErrorFor(COMMAND, 11, "")).to.be.instanceOf(RepositoryLockedError);
    expect(resticErrorFor(COMMAND, 12, "")).to.be.instanceOf(WrongPasswordError);
  });

  it("says which command on which repository failed, with the exit code, the stderr tail and a hint", () => {
    const err = resticErrorFor(COMMAND, 1, fixture("wrong-password.stderr.txt"));
    expect(err.message).to.equal("restic snapshots on /srv/repo failed (exit 1): wrong password or no key found");
    expect(err.command).to.deep.equal(COMMAND);
    expect(err.exitCode).to.equal(1);
    expect(err.stderrTail).to.contain("wrong password");
    expect(err.hint).to.contain("recovery kit");
  });

  it("never shows credentials of a repository URL, and passes the password only as a file in the environment", () => {
    expect(displayLocation("rest:https://backup:s3cret@site-b.example:8000/plum")).to.equal("rest:https://backup:***@site-b.example:8000/plum");
    expect(displayLocation("/var/lib/plum/backups/primary")).to.equal("/var/lib/plum/backups/primary");
    const repo = { role: "primary" as const, location: "rest:https://u:pw@h/r", passwordFile: "/p/restic-password" };
    const fromRepo = { role: "secondary" as const, location: "rest:https://v:pw2@h/s", passwordFile: "/p/other" };
    expect(displayCommand({ repo, fromRepo, args: ["copy", "a"] }).join(" ")).to.not.match(/pw2?@/);
    const saved = process.env.RESTIC_PASSWORD;
    process.env.RESTIC_PASSWORD = "leaked";
    try {
      const env = resticEnvironment(repo, fromRepo);
      expect(env.RESTIC_PASSWORD).to.equal(undefined);
      expect(env.RESTIC_REPOSITORY).to.equal("rest:https://u:pw@h/r");
      expect(env.RESTIC_FROM_REPOSITORY).to.equal("rest:https://v:pw2@h/s");
      expect(env.RESTIC_PASSWORD_FILE).to.equal("/p/restic-password");
      expect(env.RESTIC_FROM_PASSWORD_FILE).to.equal("/p/other");
    } finally {
      if (saved === undefined) delete process.env.RESTIC_PASSWORD;
      else process.env.RESTIC_PASSWORD = saved;
    }
  });
});
