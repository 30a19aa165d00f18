import { expect } from "chai";
import path from "node:path";
import { appTarArgs, bundleTarArgs, gzipArgs, tscArgs } from "../../appliance/releases/bundle-builder.ts";
import { tarExtractArgs, tarListArgs } from "../../appliance/releases/bundle-importer.ts";
import { migrateInvocation, validateInvocation } from "../../appliance/upgrade/release-commands-runner.ts";
import { pgRestoreArgs } from "../../backup/restore/pg-restore.ts";
import { resticArgs } from "../../backup/restic/restic-args.ts";
import { displayCommand } from "../../backup/restic/restic-process.ts";
import { pgDumpArgs } from "../../backup/sets/backup-set-creator.ts";
import type { PgServer } from "../../lib/db/database.ts";

// Builders are pure and the runner executes: these are the exact command lines the appliance runs.
describe("argument builders (the exact argv of every child process)", () => {
  const server: PgServer = { host: "db.example", port: 5433, user: "plum", password: "never-in-argv", sslmode: "require", embedded: false };

  it("pg_dump: custom format from the held snapshot, address and user in argv, never the password", () => {
    const args = pgDumpArgs(server, "plum", "00000003-0000001B-1");
    expect(args).to.deep.equal([
      "--format=custom",
      "--snapshot=00000003-0000001B-1",
      "--no-password",
      "--lock-wait-timeout=300000",
      "--host",
      "db.example",
      "--port",
      "5433",
      "--username",
      "plum",
      "--dbname",
      "plum",
    ]);
    expect(args.join(" ")).to.not.contain("never-in-argv");
  });

  it("pg_restore: the dump from stdin into the new database, owned by whoever restores it", () => {
    expect(pgRestoreArgs("plum_restore_20261123")).to.deep.equal(["--no-owner", "--no-acl", "--dbname", "plum_restore_20261123"]);
  });

  it("restic: one builder per verb, --json wherever 0.14 has it", () => {
    const target = path.resolve("restore-here");
    const table: Array<[string[], string[]]> = [
      [resticArgs.init(), ["init"]],
      [resticArgs.init({ fromRepo: true, copyChunkerParams: true }), ["init", "--copy-chunker-params"]],
      [
        resticArgs.backup(["set:1", "part:db-plum"], { stdinFilename: "plum.dump" }),
        ["backup", "--json", "--tag", "set:1", "--tag", "part:db-plum", "--stdin", "--stdin-filename", "plum.dump"],
      ],
      [
        resticArgs.backup(["set:1"], { paths: ["/var/lib/plum/files", "rel"] }),
        ["backup", "--json", "--tag", "set:1", "/var/lib/plum/files", path.resolve("rel")],
      ],
      [resticArgs.snapshots(), ["snapshots", "--json"]],
      [resticArgs.snapshots({ tags: ["set:1", "part:files"], ids: ["abcd1234"] }), ["snapshots", "--json", "--tag", "set:1,part:files", "abcd1234"]],
      [resticArgs.forget(["a", "b"]), ["forget", "a", "b"]],
      [resticArgs.prune(), ["prune"]],
      [resticArgs.copy(["a"]), ["copy", "a"]],
      [resticArgs.check(), ["check"]],
      [resticArgs.check("2/10"), ["check", "--read-data-subset", "2/10"]],
      [resticArgs.restore("a", "restore-here", ["/x", "/y"]), ["restore", "a", "--target", target, "--include", "/x", "--include", "/y"]],
      [resticArgs.dump("a", "/plum.dump"), ["dump", "a", "/plum.dump"]],
      [resticArgs.unlock(), ["unlock"]],
      [resticArgs.catConfig(), ["cat", "config"]],
      [resticArgs.keyList(), ["key", "list", "--json"]],
    ];
    for (const [actual, expected] of table) expect(actual).to.deep.equal(expected);
  });

  it("restic: refuses what 0.14 would misread (commas in tags, copy/forget of nothing, no path)", () => {
    expect(() => resticArgs.snapshots({ tags: ["a,b"] })).to.throw('invalid restic tag "a,b"');
    expect(() => resticArgs.backup([""], { paths: ["/x"] })).to.throw('invalid restic tag ""');
    expect(() => resticArgs.backup([], { paths: [] })).to.throw("no path given");
    expect(() => resticArgs.copy([])).to.throw("no snapshot given");
    expect(() => resticArgs.forget([])).to.throw("no snapshot given");
    expect(() => resticArgs.init({ copyChunkerParams: true })).to.throw("copyChunkerParams needs fromRepo");
  });

  it("restic: the command as shown masks credentials in every repository URL", () => {
    const repo = { role: "primary" as const, location: "rest:https://u:pw@h/r", passwordFile: "/p" };
    const fromRepo = { role: "secondary" as const, location: "rest:https://v:pw2@h/s", passwordFile: "/p" };
    expect(displayCommand({ repo, fromRepo, args: resticArgs.copy(["a"]) })).to.deep.equal([
      "restic",
      "-r",
      "rest:https://u:***@h/r",
      "copy",
      "--from-repo",
      "rest:https://v:***@h/s",
      "a",
    ]);
  });

  it("tar when importing: list, extract named members, unpack app.tgz; never the archive's owners or modes", () => {
    expect(tarListArgs("/in/plum-1.4.0.tar", false)).to.deep.equal(["tar", "-tvf", "/in/plum-1.4.0.tar"]);
    expect(tarListArgs("/w/app.tgz", true)).to.deep.equal(["tar", "-tvzf", "/w/app.tgz"]);
    expect(tarExtractArgs("/in/b.tar", "/w", { members: ["manifest.json", "manifest.sig"] })).to.deep.equal([
      "tar",
      "-xf",
      "/in/b.tar",
      "-C",
      "/w",
      "--no-same-owner",
      "--no-same-permissions",
      "manifest.json",
      "manifest.sig",
    ]);
    expect(tarExtractArgs("/w/app.tgz", "/r/.partial", { gzip: true })).to.deep.equal([
      "tar",
      "-xzf",
      "/w/app.tgz",
      "-C",
      "/r/.partial",
      "--no-same-owner",
      "--no-same-permissions",
    ]);
  });

  it("tar, gzip and tsc when building: normalised owners and order, members from where they live", () => {
    const normalise = ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--hard-dereference"];
    expect(
      appTarArgs({ stage: "/s", distParent: "/d", sourceDir: "/src", modules: { include: ["node_modules/pg"], exclude: ["node_modules/pg/test"] } }),
    ).to.deep.equal([
      "tar",
      "-c",
      "-f",
      "-",
      ...normalise,
      "--anchored",
      "--exclude=node_modules/pg/test",
      "-C",
      "/s",
      "package.json",
      "-C",
      "/d",
      "dist",
      "-C",
      "/src",
      "package-lock.json",
      "bin/plumctl.js",
      "web",
      "node_modules/pg",
    ]);
    expect(gzipArgs(1)).to.deep.equal(["gzip", "-1", "-n"]);
    expect(bundleTarArgs("/out/plum-1.4.0.tar.partial-ab", "/b")).to.deep.equal([
      "tar",
      "-c",
      "-f",
      "/out/plum-1.4.0.tar.partial-ab",
      ...normalise.slice(1),
      "-C",
      "/b",
      "manifest.json",
      "manifest.sig",
      "app.tgz",
    ]);
    expect(tscArgs("/app/node_modules/typescript/lib/tsc.js", "/w/dist")).to.deep.equal([
      process.execPath,
      "/app/node_modules/typescript/lib/tsc.js",
      "-p",
      "tsconfig.build.json",
      "--outDir",
      "/w/dist",
    ]);
  });

  it("a release's own plumctl: arguments in argv, the database URL (with its password) only in the environment", () => {
    const url = "postgres://plum:pw@127.0.0.1:5433/plum_staging?sslmode=disable";
    expect(migrateInvocation(url, { timeoutMs: 1000 })).to.deep.equal({ args: ["migrate"], env: { PLUM_MIGRATE_DATABASE_URL: url }, timeoutMs: 1000 });
    expect(migrateInvocation(url, { to: "0007_vouchers", timeoutMs: 1000 }).args).to.deep.equal(["migrate", "--to", "0007_vouchers"]);
    expect(validateInvocation("http://127.0.0.1:4100", url, ["ledger", "vouchers"], 2000)).to.deep.equal({
      args: ["validate", "--url", "http://127.0.0.1:4100", "--suite", "ledger", "--suite", "vouchers"],
      env: { PLUM_VALIDATE_DATABASE_URL: url },
      timeoutMs: 2000,
    });
  });
});
