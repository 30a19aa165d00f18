import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { waitFor } from "../../lib/wait.ts";
import { plumctl } from "../support/plumctl.ts";
import { lowerCasedMerchantNames } from "../support/release-patches.ts";
import { RunningAppliance } from "../support/running-appliance.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";

/**
 * The data-diff gate end to end: real signed bundles built from this tree, a real agent, PostgreSQL and restic.
 * A release whose migration silently lower-cases merchant names is refused at validate, production untouched;
 * the same release stating the change waits for approval with the declaration in its report, then promotes.
 */
describe("upgrades: the data-diff gate refuses undeclared data changes at validate, shows declared ones", function () {
  this.timeout(600_000);
  let appliance: RunningAppliance;
  let outDir: string;
  const bundles: Record<string, string> = {};

  before(async () => {
    outDir = mkdtempSync(path.join(tmpdir(), "plum-gate-bundles-"));
    const { privateKey } = testVendorKeys();
    bundles.silent = await buildTestBundle({ version: "0.2.0", patch: lowerCasedMerchantNames(), key: privateKey, outDir });
    bundles.declared = await buildTestBundle({ version: "0.2.1", patch: lowerCasedMerchantNames(true), key: privateKey, outDir });
    appliance = await RunningAppliance.start({
      env: { PLUM_VENDOR_PUBLIC_KEY: testVendorKeys().publicKeyPem, PLUM_UPGRADE_PROMOTION: "now", PLUM_UPGRADE_SOAK_SECONDS: "2" },
      demoParticipants: 200,
    });
    for (const file of Object.values(bundles)) expect((await plumctl(["release", "import", file], appliance.env, 120_000)).code).to.equal(0);
  });
  after(async () => {
    await appliance?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  const merchantNames = async () => (await appliance.query<{ id: number; name: string }>("select id, name from merchants order by id")).rows;

  it("refuses a release whose migration silently lower-cases merchant names: aborted at validate, named, production untouched", async () => {
    const before = await merchantNames();
    expect(before.length).to.be.greaterThan(2);
    expect(before.every((m) => m.name !== m.name.toLowerCase())).to.equal(true);
    const res = await plumctl(["upgrade", "start", "0.2.0", "--now"], appliance.env, 300_000);
    expect(res.code, res.stdout + res.stderr).to.equal(1);
    const examples = before
      .slice(0, 5)
      .map((m) => `id=${m.id}`)
      .join(", ");
    const refusal = `0.2.0's migrations changed data they do not declare: merchants.name: ${before.length} rows changed (e.g. ${examples})`;
    expect(res.stdout).to.include(refusal);
    const { latest } = await appliance.upgradeStatus();
    expect([latest.status, latest.step, latest.error]).to.deep.equal(["aborted", "validate", refusal]);
    expect(latest.report.steps.validate.outcome).to.equal("failed");
    expect(latest.report.dataGate).to.deep.include({ verdict: "refused", declaredBy: "manifest", migrations: ["1732000000800_merchant-names"] });
    expect(latest.report.dataGate.before.from).to.equal("restore");
    expect(latest.report.suites, "no suite ran on staging").to.equal(undefined);
    expect(await merchantNames()).to.deep.equal(before);
    expect((await appliance.served()).version).to.equal("0.1.0");
    expect(await appliance.stagingExists(), "staging dropped").to.equal(false);
    const left = await appliance.query("select datname from pg_database where datname like $1", [`${appliance.dbs.product}\\_staging%`]);
    expect(left.rows, "no staging or scratch database left").to.deep.equal([]);
  });

  it("the same change, stated by the release, waits for approval with the declaration in its report, then promotes", async () => {
    const before = await merchantNames();
    const res = await plumctl(["upgrade", "start", "0.2.1", "--approve"], appliance.env, 300_000);
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    const { latest } = await appliance.upgradeStatus();
    expect([latest.status, latest.step], latest.error ?? "").to.deep.equal(["waiting", "promote"]);
    expect(latest.report.dataGate.verdict).to.equal("passed");
    expect(latest.report.dataGate.declared).to.deep.include({
      change: "column-rewritten",
      table: "merchants",
      column: "name",
      note: "merchant names are kept in lower case",
      source: "stated",
      migration: "1732000000800_merchant-names",
      measured: "values changed",
    });
    expect(await merchantNames(), "production untouched until approved").to.deep.equal(before);

    expect((await plumctl(["upgrade", "approve"], appliance.env, 60_000)).code).to.equal(0);
    const done = await waitFor(
      "the approved upgrade to finish",
      async () => {
        const s = await appliance.upgradeStatus();
        return ["completed", "aborted", "rolled-back", "failed"].includes(s.latest.status) ? s : undefined;
      },
      { timeoutMs: 240_000 },
    );
    expect(done.latest.status, done.latest.error ?? "").to.equal("completed");
    expect((await appliance.served()).version).to.equal("0.2.1");
    expect(await merchantNames()).to.deep.equal(before.map((m) => ({ ...m, name: m.name.toLowerCase() })));
  });
});
