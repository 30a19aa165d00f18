import { expect } from "chai";
import path from "node:path";
import semver from "semver";
import { homeLayout } from "../../lib/paths.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { opsRows } from "../support/ops-rows.ts";
import { plumctl } from "../support/plumctl.ts";
import { buildTestBundle, folderListing, testVendorKeys, withFlippedAppByte } from "../support/test-bundles.ts";

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
    bundle = await buildTestBundle({ version, key: keys.keyFile, outDir: path.join(home, "incoming") });
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
