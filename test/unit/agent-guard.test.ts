import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { agentRollbackFile, agentTrialFile, parseRollback, parseTrial, trialOutcomeFor, writeTrial } from "../../appliance/agent-upgrade/agent-trial.ts";
import { runChild } from "../../lib/child-process.ts";
import { serviceOfThisProcess } from "../../lib/systemd-service.ts";
import { agentGuardScript } from "../../installer/agent-guard.ts";
import { INSTALL_PATHS, type InstallPaths } from "../../installer/install-layout.ts";

/** The guard is sh: run the script install writes, on a layout in a temp folder, as systemd runs it. */
describe("agent guard (agent-guard.sh) and the agent trial", () => {
  let root: string;
  let p: InstallPaths;
  let bin: string;
  const current = () => readlinkSync(path.join(p.optDir, "current"));
  const guard = (mode: "start" | "deadline") =>
    runChild(["sh", p.agentGuard, mode], { timeoutMs: 10_000, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "plum-guard-"));
    p = { ...INSTALL_PATHS, optDir: path.join(root, "opt"), home: path.join(root, "home"), agentGuard: path.join(root, "opt", "agent-guard.sh") };
    for (const v of ["1.0.0", "1.1.0"]) mkdirSync(path.join(p.optDir, v, "app"), { recursive: true });
    mkdirSync(path.join(p.home, "run"), { recursive: true });
    symlinkSync("1.1.0", path.join(p.optDir, "current"));
    writeFileSync(p.agentGuard, agentGuardScript(p), { mode: 0o755 });
    // systemctl, as the deadline's restart calls it: records what it was asked.
    bin = path.join(root, "bin");
    mkdirSync(bin);
    writeFileSync(path.join(bin, "systemctl"), `#!/bin/sh\necho "$@" >> '${root}/systemctl.calls'\n`);
    chmodSync(path.join(bin, "systemctl"), 0o755);
    writeTrial(p.home, { from: "1.0.0", to: "1.1.0", upgrade: 7, started: "2026-12-02T10:00:00.000Z", starts: 0 });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("does nothing without a trial", async () => {
    rmSync(agentTrialFile(p.home));
    await guard("start");
    expect(current()).to.equal("1.1.0");
    expect(existsSync(agentRollbackFile(p.home))).to.equal(false);
  });

  it("lets the new agent start once, and switches back at the next start of a trial still open", async () => {
    const first = await guard("start");
    expect(first.stdout).to.include("first start of the new agent 1.1.0");
    expect(current()).to.equal("1.1.0");
    expect(parseTrial(readFileSync(agentTrialFile(p.home), "utf8"))?.starts).to.equal(1);

    // The new agent exited (or its start was not ready in time): systemd starts the unit again.
    const second = await guard("start");
    expect(second.stdout).to.include("is back on 1.0.0");
    expect(current()).to.equal("1.0.0");
    expect(existsSync(agentTrialFile(p.home))).to.equal(false);
    const rollback = parseRollback(readFileSync(agentRollbackFile(p.home), "utf8"))!;
    expect(rollback).to.include({ from: "1.1.0", to: "1.0.0", upgrade: 7 });
    expect(rollback.reason).to.equal("the new agent 1.1.0 did not come up (it exited, or was not ready in time)");
    expect(existsSync(path.join(root, "systemctl.calls")), "a start needs no restart").to.equal(false);
    // The agent switched back to records it; the new one would not.
    expect(trialOutcomeFor(p.home, "1.1.0")).to.equal(undefined);
    expect(trialOutcomeFor(p.home, "1.0.0")).to.deep.include({ kind: "rolled-back" });
  });

  it("at the deadline, switches back and restarts the service", async () => {
    await guard("start");
    await guard("deadline");
    expect(current()).to.equal("1.0.0");
    expect(parseRollback(readFileSync(agentRollbackFile(p.home), "utf8"))?.reason).to.equal("the new agent 1.1.0 was not serving at the trial's deadline");
    expect(readFileSync(path.join(root, "systemctl.calls"), "utf8").trim()).to.equal("restart --no-block plum.service");
  });

  it("a trial the new agent ended is no concern of the deadline; one switched away by hand is dropped", async () => {
    await guard("start");
    expect(trialOutcomeFor(p.home, "1.1.0")).to.deep.include({ kind: "done" });
    rmSync(agentTrialFile(p.home)); // the new agent serves: it ends its trial
    await guard("deadline");
    expect(current()).to.equal("1.1.0");
    expect(existsSync(path.join(root, "systemctl.calls"))).to.equal(false);

    writeTrial(p.home, { from: "1.0.0", to: "1.2.0", upgrade: 8, started: "x", starts: 1 });
    await guard("start");
    expect(current()).to.equal("1.1.0");
    expect(existsSync(agentTrialFile(p.home))).to.equal(false);
  });

  it("never switches to a release that is gone", async () => {
    rmSync(path.join(p.optDir, "1.0.0"), { recursive: true });
    await guard("start");
    const second = await guard("start");
    expect(second.stderr).to.include("cannot switch back");
    expect(current()).to.equal("1.1.0");
  });

  it("knows the service it runs in from its cgroup", () => {
    expect(serviceOfThisProcess("0::/system.slice/plum.service\n")).to.equal("plum.service");
    expect(serviceOfThisProcess("12:pids:/system.slice/plum.service/agent\n0::/system.slice/plum.service\n")).to.equal("plum.service");
    expect(serviceOfThisProcess("0::/user.slice/user-0.slice/session-3.scope\n")).to.equal(undefined);
    expect(serviceOfThisProcess("0::/\n")).to.equal(undefined);
  });
});
