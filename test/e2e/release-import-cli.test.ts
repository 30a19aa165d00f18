import { expect } from "chai";
import { writeFileSync } from "node:fs";
import path from "node:path";
import semver from "semver";
import type { BundleManifest } from "../../appliance/releases/bundle-manifest.ts";
import { homeLayout } from "../../lib/paths.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { opsRows } from "../support/ops-rows.ts";
import { plumctl } from "../support/plumctl.ts";
import { buildTestBundle, folderListing, testVendorKeys, withFlippedAppByte } from "../support/test-bundles.ts";

// The bundle's changelog: an Unreleased section (the tree has none for the bundle's version) of four items.
const UNRELEASED = [
  "### Added",
  "",
  "- Bulk voucher export for merchants,",
  "  as CSV.",
  "- Programme budgets.",
  "",
  "### Fixed",
  "",
  "- The storefront keeps the basket across a sign-in.",
  "- Payout runs round half down again.",
].join("\n");

/** `plumctl release import` and `release list` on an appliance home with its ops database (no agent needed). */
describe("plumctl release import", function () {
  this.timeout(300_000);
  const version = semver.inc(APP_VERSION, "minor")!;
  let home: string;
  let dbs: FreshDatabases;
  let env: Record<string, string>;
  let bundle: string;

  before(async () => {
    const keys = testVendorKeys();
    home = tempHome();
    dbs = await freshDatabases({ migrated: true });
    env = { ...dbs.env, PLUM_HOME: home, PLUM_VENDOR_PUBLIC_KEY: keys.publicKeyPem };
    bundle = await buildTestBundle({
      version,
      key: keys.keyFile,
      outDir: path.join(home, "incoming"),
      patch: (tree) =>
        writeFileSync(path.join(tree, "CHANGELOG.md"), `# Changelog\n\n## [Unreleased]\n\n${UNRELEASED}\n\n## [${APP_VERSION}] - 2026-11-23\n\n- First.\n`),
    });
  });
  after(async () => {
    await dbs?.drop();
    removeHome(home);
  });

  const auditRows = () =>
    opsRows<{ target: string; outcome: string; detail: Record<string, unknown> }>(
      dbs,
      "select target, outcome, detail from audit_log where action = 'release.import' order by id",
    );

  it("imports a signed bundle, lists it, and audits the import", async () => {
    const res = await plumctl(["release", "import", bundle], env, 120_000);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.match(new RegExp(`^imported release ${version.replace(/\./g, "\\.")} \\(schema \\S+, upgrades from \\d+\\.\\d+\\.0\\)`));
    const list = await plumctl(["release", "list", "--json"], env);
    expect(list.code, list.stderr).to.equal(0);
    const releases = JSON.parse(list.stdout) as Array<{ version: string; installed: boolean; dir: string }>;
    expect(releases.map((r) => [r.version, r.installed])).to.deep.equal([
      [version, false],
      [APP_VERSION, true],
    ]);
    expect(releases[0].dir).to.equal(path.join(homeLayout(home).releasesDir, version));
    const rows = await auditRows();
    expect(rows.map((r) => [r.target, r.outcome])).to.deep.equal([[version, "success"]]);
  });

  it("prints what the imported release changes: its first items in `release list`, all of it with --changes and in `release show`", async () => {
    const note = `${version}: from CHANGELOG.md's Unreleased section: the changelog had no section for ${version} yet\n`;
    const list = await plumctl(["release", "list"], env);
    expect(list.code, list.stderr).to.equal(0);
    expect(list.stdout).to.match(/^VERSION +SCHEMA +UPGRADES FROM +IMPORTED\n/);
    expect(list.stdout).to.include(
      `\n\n${note}` +
        "  - Added: Bulk voucher export for merchants, as CSV.\n" +
        "  - Added: Programme budgets.\n" +
        "  - Fixed: The storefront keeps the basket across a sign-in.\n" +
        `  … 1 more: \`plumctl release show ${version}\`\n`,
    );

    const whole =
      note +
      UNRELEASED.split("\n")
        .map((l) => (l === "" ? l : `  ${l}`))
        .join("\n") +
      "\n";
    const show = await plumctl(["release", "show", version], env);
    expect(show.code, show.stderr).to.equal(0);
    expect(show.stdout).to.match(new RegExp(`^release +${version.replace(/\./g, "\\.")} \\(imported \\d{4}-`));
    expect(show.stdout).to.include(`\n\n${whole}`);
    expect((await plumctl(["release", "list", "--changes"], env)).stdout).to.include(`\n\n${whole}`);
    const json = JSON.parse((await plumctl(["release", "show", version, "--json"], env)).stdout) as { manifest: BundleManifest };
    expect(json.manifest.changes).to.deep.equal({ section: "Unreleased", text: UNRELEASED });

    const unknown = await plumctl(["release", "show", "9.9.9"], env);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.include(`error: release 9.9.9 is not on this appliance (it has ${version}, ${APP_VERSION})`);
  });

  it("refuses a damaged bundle with exit code 1, changes nothing, and audits the refusal with its check", async () => {
    const damaged = await withFlippedAppByte(bundle, path.join(home, "incoming", "damaged.tar"));
    const before = folderListing(homeLayout(home).releasesDir);
    const res = await plumctl(["release", "import", damaged], env, 120_000);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.match(
      /^error: release bundle refused by the checksum check: app\.tgz does not match the signed manifest: sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}$/m,
    );
    expect(res.stderr).to.include("hint: the bundle was damaged or altered on the way");
    expect(folderListing(homeLayout(home).releasesDir)).to.deep.equal(before);
    const rows = await auditRows();
    expect(rows.map((r) => [r.target, r.outcome, r.detail.check])).to.deep.equal([
      [version, "success", undefined],
      ["damaged.tar", "failure", "checksum"],
    ]);
  });
});
