import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import pg from "pg";
import { QueryTypes, type Sequelize } from "sequelize";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { UpgradeJournal, type Upgrade } from "../../appliance/upgrade/upgrade-journal.ts";
import { removeHome, startAgentProcess, tempHome, type AgentProcess } from "../support/agent-process.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { plumctl } from "../support/plumctl.ts";
import { addMigration } from "../support/release-patches.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";

/**
 * The agent killed for real (SIGKILL by its pid, from the test, as soon as the journal shows the step started),
 * once before promotion and once after, then started again: the upgrade is undone or resumed; exactly one
 * version serves, on its own schema, with no staging copy left; the journal and the audit chain verify. Every
 * other step's crash is proven at the seam (test/unit/upgrade-manager.test.ts, upgrade-rollback.test.ts).
 */
describe("upgrades survive the agent being killed (SIGKILL) before and after promotion", function () {
  this.timeout(600_000);
  let home: string;
  let dbs: FreshDatabases;
  let env: Record<string, string>;
  let agent: AgentProcess | undefined;
  let product: pg.Client;
  let ops: Sequelize;
  let journal: UpgradeJournal;
  let outDir: string;

  before(async () => {
    outDir = mkdtempSync(path.join(tmpdir(), "plum-crash-bundles-"));
    const bundle = await buildTestBundle({
      version: "0.2.0",
      patch: addMigration("1732000000500_release-notes", "create table release_notes (id serial primary key, body text not null)", "drop table release_notes"),
      key: testVendorKeys().privateKey,
      outDir,
    });
    home = tempHome();
    dbs = await freshDatabases();
    env = { ...dbs.env, PLUM_VENDOR_PUBLIC_KEY: testVendorKeys().publicKeyPem, PLUM_UPGRADE_PROMOTION: "now", PLUM_UPGRADE_SOAK_SECONDS: "6" };
    agent = await startAgentProcess({ home, env });
    env.PLUM_HOME = home;
    const imported = await plumctl(["release", "import", bundle], env, 120_000);
    expect(imported.code, imported.stderr).to.equal(0);
    product = new pg.Client(clientConfig(dbs.server, dbs.product));
    await product.connect();
    ops = openSequelize(clientConfig(dbs.server, dbs.ops), { poolMax: 2 });
    journal = new UpgradeJournal(ops);
  });
  after(async () => {
    await product?.end();
    await ops?.close();
    await agent?.stop("SIGTERM");
    await dbs?.drop();
    removeHome(home);
    rmSync(outDir, { recursive: true, force: true });
  });

  const served = async () => ((await (await fetch(new URL("/version", agent!.proxyUrl))).json()) as { version: string }).version;
  const schema = async () => (await product.query("select name from pgmigrations order by run_on desc, id desc limit 1")).rows[0].name as string;
  const productionInstances = () =>
    readdirSync(path.join(home, "run", "instances"))
      .map((f) => (JSON.parse(readFileSync(path.join(home, "run", "instances", f), "utf8")) as { id: string }).id)
      .filter((id) => id.startsWith("production@"));
  const stagingExists = async () => (await product.query("select 1 from pg_database where datname = $1", [`${dbs.product}_staging`])).rowCount === 1;

  /** Start an upgrade, and SIGKILL the agent the moment the journal says `step` started. */
  async function killDuring(step: string): Promise<Upgrade> {
    const started = await plumctl(["upgrade", "start", "0.2.0", "--now", "--no-follow"], env);
    expect(started.code, started.stderr).to.equal(0);
    const u = (await journal.latest())!;
    await waitFor(
      `upgrade ${u.id} to start ${step}`,
      async () => ((await journal.entries(u.id)).some((e) => e.step === step && e.phase === "started") ? true : undefined),
      { timeoutMs: 240_000, firstDelayMs: 20, maxDelayMs: 50 },
    );
    process.kill(agent!.agentPid(), "SIGKILL");
    expect((await withDeadline(`the agent to die during ${step}`, 30_000, agent!.exited)).signal).to.equal("SIGKILL");
    const killed = (await journal.get(u.id))!;
    expect(killed.step).to.equal(step);
    expect(killed.finishedAt).to.equal(null);
    return killed;
  }

  async function restartAndSettle(id: number): Promise<Upgrade> {
    agent = await startAgentProcess({ home, env });
    return waitFor(
      `upgrade ${id} to settle after the restart`,
      async () => {
        const u = await journal.get(id);
        return u?.finishedAt ? u : undefined;
      },
      { timeoutMs: 240_000, maxDelayMs: 500 },
    );
  }

  async function expectAtRest(version: string, schemaName: string): Promise<void> {
    expect(await served()).to.equal(version);
    expect(await schema()).to.equal(schemaName);
    expect(productionInstances()).to.deep.equal([`production@${version}`]);
    expect(await stagingExists()).to.equal(false);
    expect((await journal.verify()).ok, "the upgrade journal's chain").to.equal(true);
    expect((await new AuditLog(ops).verify()).ok, "the audit chain").to.equal(true);
  }

  it("killed during stage: the restarted agent undoes the upgrade, production untouched", async () => {
    const killed = await killDuring("stage");
    const after = await restartAndSettle(killed.id);
    expect(after.status, after.error ?? "").to.equal("aborted");
    expect(after.error).to.include("interrupted by an agent restart during stage");
    await expectAtRest("0.1.0", "1732000000200_payouts");
  });

  it("killed during the soak: the restarted agent resumes it to completion; the staging restore is evidence", async () => {
    const killed = await killDuring("soak");
    const after = await restartAndSettle(killed.id);
    expect(after.status, after.error ?? "").to.equal("completed");
    await expectAtRest("0.2.0", "1732000000500_release-notes");

    // The staging copy proved the pre-upgrade set restores: a verified restore in the evidence log.
    const [row] = await ops.query<{
      outcome: string;
      set_id: string;
      detail: { purpose: string; note: string; verified: boolean; checks: Array<{ passed: boolean }> };
    }>("select outcome, set_id, detail from backup_evidence where kind = 'restore' and set_id = :setId order by id desc limit 1", {
      replacements: { setId: after.snapshotSetId },
      type: QueryTypes.SELECT,
    });
    expect(row).to.include({ outcome: "success", set_id: after.snapshotSetId });
    expect(row.detail).to.include({ purpose: "staging", note: "restored for staging, verified", verified: true });
    expect(row.detail.checks.length).to.be.greaterThan(0);
    expect(row.detail.checks.every((c) => c.passed)).to.equal(true);

    const back = await plumctl(["rollback", "--to", "0.1.0"], env, 240_000);
    expect(back.code, back.stdout + back.stderr).to.equal(0);
    expect(await served()).to.equal("0.1.0");
  });
});
