import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { AgentUpgrader, installedAgentOf, type AgentUpgraderDeps } from "../../appliance/agent-upgrade/agent-upgrader.ts";
import { agentTrialFile, parseTrial } from "../../appliance/agent-upgrade/agent-trial.ts";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import type { BundleManifest } from "../../appliance/releases/bundle-manifest.ts";
import { UpgradeJournal } from "../../appliance/upgrade/upgrade-journal.ts";
import { runChild } from "../../lib/child-process.ts";
import { createLogger } from "../../lib/logger.ts";
import { waitFor } from "../../lib/wait.ts";
import { agentGuardScript } from "../../installer/agent-guard.ts";
import { INSTALL_PATHS } from "../../installer/install-layout.ts";
import { upgradeTestBed } from "../support/fake-upgrade-host.ts";

/**
 * The agent upgrade at its seam: the real AgentUpgrader on a real journal (plum_ops of the test cluster), an
 * installed layout in a temp folder, the real guard script; the restart and the backup are the seam's.
 */
describe("agent upgrade (real journal, installed layout in a temp folder)", function () {
  this.timeout(60_000);
  const bed = upgradeTestBed();
  let root: string;
  let home: string;
  let opt: string;
  let calls: string[];

  const manifest = (version: string, agent: boolean) =>
    ({ version, ...(agent && { agent: { file: "node.tgz", nodeVersion: "v20.0.0" } }) }) as unknown as BundleManifest;

  beforeEach(async () => {
    root = mkdtempSync(path.join(tmpdir(), "plum-agentup-"));
    home = path.join(root, "home");
    opt = path.join(root, "opt");
    mkdirSync(path.join(home, "run"), { recursive: true });
    mkdirSync(path.join(opt, "1.0.0", "app"), { recursive: true });
    symlinkSync("1.0.0", path.join(opt, "current"));
    writeFileSync(path.join(opt, "agent-guard.sh"), agentGuardScript({ ...INSTALL_PATHS, optDir: opt, home, agentGuard: path.join(opt, "agent-guard.sh") }));
    // The imported release 1.1.0: its app tree and its verified node.tgz, as the importer keeps them.
    const release = path.join(root, "releases", "1.1.0");
    mkdirSync(path.join(release, "bin"), { recursive: true });
    writeFileSync(path.join(release, "bin", "plumctl.js"), "// 1.1.0\n");
    mkdirSync(path.join(root, "node-tree", "node", "bin"), { recursive: true });
    writeFileSync(path.join(root, "node-tree", "node", "bin", "node"), "#!/bin/sh\n", { mode: 0o755 });
    await runChild(["tar", "-c", "-z", "-f", path.join(release, "node.tgz"), "-C", path.join(root, "node-tree"), "node"], { timeoutMs: 10_000 });
    calls = [];
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const upgrader = (version: string, over: Partial<AgentUpgraderDeps> = {}) =>
    new AgentUpgrader({
      home,
      version,
      installed: installedAgentOf(path.join(opt, version, "app"), version),
      journal: new UpgradeJournal(bed.sequelize),
      audit: new AuditLog(bed.sequelize),
      log: createLogger("test-agent-upgrade", { level: "silent" }),
      releases: { manifest: (v) => manifest(v, v !== "1.0.0" && v !== "1.0.5"), ref: (v) => ({ dir: path.join(root, "releases", v) }) },
      recheck: async (v) => {
        calls.push(`recheck ${v}`);
        return ["signature: ok"];
      },
      snapshot: async (tag) => {
        calls.push(`snapshot ${tag}`);
        return { setId: "set-9", takenAt: new Date() };
      },
      restart: async () => {
        calls.push("restart");
        return { how: "systemd", unit: "plum.service" };
      },
      service: () => "plum.service",
      ...over,
    });
  const settledAt = (id: number, statuses: string[]) =>
    waitFor(
      `upgrade ${id} to reach ${statuses.join("/")}`,
      async () => {
        const u = (await new UpgradeJournal(bed.sequelize).history(20)).find((x) => x.id === id);
        return u && statuses.includes(u.status) ? u : undefined;
      },
      { timeoutMs: 20_000 },
    );
  const auditActions = async (id: number) =>
    (await new AuditLog(bed.sequelize).list({ limit: 50 })).filter((r) => r.target === `upgrade:${id}`).map((r) => r.action);

  it("refuses a release whose product schema production does not have yet: the product goes first, staged", async () => {
    const before = (await new UpgradeJournal(bed.sequelize).history(50)).length;
    const up = upgrader("1.0.0", { production: async () => ({ version: "1.0.0", schemaVersion: "1000_before" }) });
    const err = (await up.start({ version: "1.1.0", actor: "cli" }).catch((e: unknown) => e)) as Error & { hint?: string };
    expect(err.message).to.contain("its migrations would run on production without staging");
    expect(err.hint).to.contain("plumctl upgrade start 1.1.0 --product");
    expect((await new UpgradeJournal(bed.sequelize).history(50)).length, "nothing journaled").to.equal(before);
    expect(readlinkSync(path.join(opt, "current"))).to.equal("1.0.0");
    expect(calls).to.deep.equal([]);
  });

  it("refuses, before anything is written, without the service, without the installed layout, an older release or one without an agent", async () => {
    await expectRejected(
      upgrader("1.0.0", { service: () => undefined }).start({ version: "1.1.0", actor: "cli" }),
      /needs the agent to run as the systemd service/,
    );
    await expectRejected(upgrader("1.0.0", { installed: undefined }).start({ version: "1.1.0", actor: "cli" }), /needs the installed layout/);
    await expectRejected(upgrader("1.2.0").start({ version: "1.1.0", actor: "cli" }), /not newer than the running agent 1.2.0/);
    await expectRejected(upgrader("1.0.0").start({ version: "1.0.5", actor: "cli" }), /1.0.5 carries no agent/);
    expect(await new UpgradeJournal(bed.sequelize).active()).to.equal(undefined);
    expect(readlinkSync(path.join(opt, "current"))).to.equal("1.0.0");
  });

  it("verify → snapshot → install and switch → restart; the new agent's start completes it", async () => {
    const u = await upgrader("1.0.0").start({ version: "1.1.0", actor: "cli" });
    const soaking = await settledAt(u.id, ["soaking", "failed"]);
    expect(soaking.status, soaking.error ?? "").to.equal("soaking");
    await waitFor("the restart", async () => calls.includes("restart") || undefined, { timeoutMs: 20_000 });
    expect(calls).to.deep.equal(["recheck 1.1.0", `snapshot upgrade:${u.id}`, "restart"]);
    expect(soaking.snapshotSetId).to.equal("set-9");
    expect(readlinkSync(path.join(opt, "current"))).to.equal("1.1.0");
    expect(readFileSync(path.join(opt, "1.1.0", "app", "bin", "plumctl.js"), "utf8")).to.equal("// 1.1.0\n");
    expect(existsSync(path.join(opt, "1.1.0", "node", "bin", "node"))).to.equal(true);
    expect(existsSync(path.join(opt, "1.1.0.partial"))).to.equal(false);
    expect(parseTrial(readFileSync(agentTrialFile(home), "utf8"))).to.include({ from: "1.0.0", to: "1.1.0", upgrade: u.id, starts: 0 });
    // One upgrade at a time: a product upgrade meanwhile is refused by the journal's lock.
    await expectRejected(
      new UpgradeJournal(bed.sequelize).create({ kind: "upgrade", fromVersion: "1.0.0", toVersion: "1.2.0", promotion: "now", requestedBy: "cli" }),
      /./,
    );

    expect(await upgrader("1.1.0").atStart()).to.equal("agent upgrade 1.0.0 → 1.1.0 completed");
    const done = await settledAt(u.id, ["completed"]);
    expect(done.step).to.equal("complete");
    expect(existsSync(agentTrialFile(home))).to.equal(false);
    expect(await auditActions(u.id)).to.include.members(["agent.upgrade.start", "agent.upgrade.complete"]);
  });

  it("a new agent that does not come up: the guard switches back, the previous agent records the rollback", async () => {
    const u = await upgrader("1.0.0").start({ version: "1.1.0", actor: "cli" });
    await settledAt(u.id, ["soaking"]);
    // systemd starts the new agent (the guard lets it), it exits, systemd starts the unit again.
    await runChild(["sh", path.join(opt, "agent-guard.sh"), "start"], { timeoutMs: 10_000 });
    await runChild(["sh", path.join(opt, "agent-guard.sh"), "start"], { timeoutMs: 10_000 });
    expect(readlinkSync(path.join(opt, "current"))).to.equal("1.0.0");
    expect(await upgrader("1.1.0").atStart(), "not the new agent's to record").to.equal(undefined);
    expect(await upgrader("1.0.0").atStart()).to.match(/^agent upgrade to 1.1.0 rolled back to 1.0.0: the new agent 1.1.0 did not come up/);
    const rolled = await settledAt(u.id, ["rolled-back"]);
    expect(rolled.error).to.match(/did not come up/);
    expect(await auditActions(u.id)).to.include("agent.upgrade.rollback");
  });

  it("a failed step before the switch leaves the running agent as it was", async () => {
    const u = await upgrader("1.0.0", {
      snapshot: async () => {
        throw new Error("the backup repository is locked");
      },
    }).start({ version: "1.1.0", actor: "cli" });
    const failed = await settledAt(u.id, ["failed"]);
    expect(failed.error).to.equal("the backup repository is locked");
    expect(readlinkSync(path.join(opt, "current"))).to.equal("1.0.0");
    expect(existsSync(path.join(opt, "1.1.0"))).to.equal(false);
    expect(existsSync(agentTrialFile(home))).to.equal(false);
    expect(await auditActions(u.id)).to.include("agent.upgrade.fail");
  });
});

async function expectRejected(p: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect((err as Error).message).to.match(message);
    return;
  }
  expect.fail("expected a rejection");
}
