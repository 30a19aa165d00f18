import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import pg from "pg";
import { clientConfig } from "../../lib/db/database.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";
import { removeHome, startAgentProcess, tempHome, type AgentProcess } from "../support/agent-process.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { plumctl } from "../support/plumctl.ts";
import { addMigration } from "../support/release-patches.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";

interface UpgradeView {
  id: number;
  status: string;
  step: string;
  error: string | null;
}

/**
 * The agent killed with SIGKILL at each step of an upgrade (test hook PLUM_UPGRADE_KILL_AT), then started
 * again: the upgrade resumes (promote and after) or is undone (before promote); exactly one version serves;
 * the journal and the audit chain verify.
 */
describe("upgrades survive the agent being killed at any step", function () {
  this.timeout(900_000);
  let home: string;
  let dbs: FreshDatabases;
  let env: Record<string, string>;
  let agent: AgentProcess | undefined;
  let product: pg.Client;
  let outDir: string;
  let bundle: string;

  before(async () => {
    outDir = mkdtempSync(path.join(tmpdir(), "plum-crash-bundles-"));
    bundle = await buildTestBundle({
      version: "0.2.0",
      patch: addMigration("1732000000500_release-notes", "create table release_notes (id serial primary key, body text not null)", "drop table release_notes"),
      key: testVendorKeys().privateKey,
      outDir,
    });
    home = tempHome();
    dbs = await freshDatabases();
    env = { ...dbs.env, PLUM_VENDOR_PUBLIC_KEY: testVendorKeys().publicKeyPem, PLUM_UPGRADE_PROMOTION: "now", PLUM_UPGRADE_SOAK_SECONDS: "2" };
    agent = await startAgentProcess({ home, env });
    env.PLUM_HOME = home;
    const imported = await plumctl(["release", "import", bundle], env, 120_000);
    expect(imported.code, imported.stderr).to.equal(0);
    product = new pg.Client(clientConfig(dbs.server, dbs.product));
    await product.connect();
  });
  after(async () => {
    await product?.end();
    await agent?.stop("SIGTERM");
    await dbs?.drop();
    removeHome(home);
    rmSync(outDir, { recursive: true, force: true });
  });

  const served = async () => ((await (await fetch(new URL("/version", agent!.proxyUrl))).json()) as { version: string }).version;
  const schema = async () => (await product.query("select name from pgmigrations order by run_on desc, id desc limit 1")).rows[0].name as string;
  const latest = async () => (JSON.parse((await plumctl(["upgrade", "status", "--json"], env)).stdout) as { latest: UpgradeView }).latest;
  const productionInstances = () =>
    readdirSync(path.join(home, "run", "instances"))
      .map((f) => (JSON.parse(readFileSync(path.join(home, "run", "instances", f), "utf8")) as { id: string }).id)
      .filter((id) => id.startsWith("production@"));
  const stagingExists = async () => (await product.query("select 1 from pg_database where datname = $1", [`${dbs.product}_staging`])).rowCount === 1;
  const settled = (u: UpgradeView) => ["completed", "aborted", "rolled-back", "failed"].includes(u.status);

  for (const step of ["verify", "snapshot", "stage", "validate", "promote", "soak", "complete"]) {
    it(`killed at ${step}: ${["promote", "soak", "complete"].includes(step) ? "resumed to completion" : "undone, production untouched"}`, async () => {
      await agent!.stop("SIGTERM");
      agent = await startAgentProcess({ home, env: { ...env, PLUM_UPGRADE_KILL_AT: step } });
      const started = await plumctl(["upgrade", "start", "0.2.0", "--now", "--no-follow"], env);
      expect(started.code, started.stderr).to.equal(0);
      const exit = await withDeadline(`the agent to be killed at ${step}`, 240_000, agent.exited);
      expect(exit.signal).to.equal("SIGKILL");
      const before = await latest();
      expect(before.step).to.equal(step);
      expect(settled(before)).to.equal(false);

      agent = await startAgentProcess({ home, env });
      const after = await waitFor(
        `the upgrade to settle after the restart`,
        async () => {
          const u = await latest();
          return settled(u) ? u : undefined;
        },
        { timeoutMs: 240_000, maxDelayMs: 1000 },
      );
      const resumed = ["promote", "soak", "complete"].includes(step);
      expect(after.status, after.error ?? "").to.equal(resumed ? "completed" : "aborted");
      expect(await served()).to.equal(resumed ? "0.2.0" : "0.1.0");
      expect(await schema()).to.equal(resumed ? "1732000000500_release-notes" : "1732000000200_payouts");
      expect(productionInstances()).to.deep.equal([`production@${resumed ? "0.2.0" : "0.1.0"}`]);
      expect(await stagingExists()).to.equal(false);
      const journal = await plumctl(["upgrade", "verify", "--json"], env);
      expect(JSON.parse(journal.stdout).ok, journal.stdout).to.equal(true);
      const audit = await plumctl(["audit", "verify", "--json"], env);
      expect(JSON.parse(audit.stdout).ok, audit.stdout).to.equal(true);
      if (resumed) {
        const back = await plumctl(["rollback", "--to", "0.1.0"], env, 240_000);
        expect(back.code, back.stdout + back.stderr).to.equal(0);
        expect(await served()).to.equal("0.1.0");
      }
    });
  }

  it("killed during a rollback's schema step: resumed, the retained release serves on its own schema", async () => {
    const up = await plumctl(["upgrade", "start", "0.2.0", "--now"], env, 240_000);
    expect(up.code, up.stdout + up.stderr).to.equal(0);
    await agent!.stop("SIGTERM");
    agent = await startAgentProcess({ home, env: { ...env, PLUM_UPGRADE_KILL_AT: "rollback" } });
    const started = await plumctl(["rollback", "--to", "0.1.0", "--no-follow"], env);
    expect(started.code, started.stderr).to.equal(0);
    expect((await withDeadline("the agent to be killed at rollback", 240_000, agent.exited)).signal).to.equal("SIGKILL");
    expect((await latest()).step).to.equal("rollback");
    agent = await startAgentProcess({ home, env });
    const after = await waitFor(
      "the rollback to settle",
      async () => {
        const u = await latest();
        return settled(u) ? u : undefined;
      },
      { timeoutMs: 240_000, maxDelayMs: 1000 },
    );
    expect(after.status, after.error ?? "").to.equal("completed");
    expect(await served()).to.equal("0.1.0");
    expect(await schema()).to.equal("1732000000200_payouts");
    expect(productionInstances()).to.deep.equal(["production@0.1.0"]);
    expect(JSON.parse((await plumctl(["upgrade", "verify", "--json"], env)).stdout).ok).to.equal(true);
    expect(JSON.parse((await plumctl(["audit", "verify", "--json"], env)).stdout).ok).to.equal(true);
  });
});
