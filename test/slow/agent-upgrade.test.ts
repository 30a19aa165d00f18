import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { waitFor } from "../../lib/wait.ts";
import { INSTALLED, installedHost, type InstalledHost } from "../support/installed-host.ts";

const V2 = "0.9.1";
const BROKEN = "0.9.2";

/** A new agent that exits at its start, before it touches anything. */
function exitsAtStart(tree: string): void {
  const file = path.join(tree, "cli", "agent-command.ts");
  const text = readFileSync(file, "utf8");
  const at = "      const { secrets } = prepareHome();";
  if (!text.includes(at)) throw new Error("patch does not apply");
  writeFileSync(file, text.replace(at, `      process.stderr.write("a broken agent\\n");\n      process.exit(3);\n${at}`));
}

/**
 * The agent upgrade on a booted Debian with systemd as PID 1: installed from the offline install bundle, then
 * upgraded to a bundle that carries a newer agent under load (no request may fail), then to one whose agent
 * exits at its start (the guard rolls back to the previous agent, which serves again).
 */
describe("agent upgrade under systemd (nspawn machine): handover restart, adoption, automatic rollback", function () {
  this.timeout(20 * 60_000);
  let installed: InstalledHost;
  const sh = (script: string, timeoutMs?: number) => installed.sh(script, timeoutMs);
  const current = async () => (await sh("readlink /opt/plum/current")).stdout.trim();
  const agentExe = async () => (await sh("readlink /proc/$(systemctl show plum -p MainPID --value)/exe")).stdout.trim();
  const fetchStatus = async (url: string) =>
    (
      await installed.host.execInNetwork([process.execPath, "-e", `fetch(${JSON.stringify(url)}).then((r) => process.stdout.write(String(r.status)))`], {
        timeoutMs: 15_000,
      })
    ).stdout;
  const diagnostics = async () =>
    (
      await installed.host.exec(
        [
          "sh",
          "-c",
          "readlink /opt/plum/current; ls -la /var/lib/plum/run; cat /var/lib/plum/run/agent-trial /var/lib/plum/run/agent-rollback 2>&1; plumctl upgrade history 2>&1 | head; systemctl status plum --no-pager 2>&1 | head -20; journalctl -u plum --no-pager -n 80; grep -h '\"level\":[456]0' /var/log/plum/agent.log | tail -20",
        ],
        { timeoutMs: 60_000, okCodes: [0, 1, 2, 3, 4] },
      )
    ).stdout;

  before(async () => {
    installed = await installedHost([{ version: V2 }, { version: BROKEN, patch: exitsAtStart }]);
  });
  after(() => installed?.stop());

  it("installed from the install bundle with no network: the sockets, the proxy and the console answer", async () => {
    expect(await current()).to.equal(INSTALLED);
    await sh("systemctl is-active plum-proxy.socket plum-console.socket plum.service");
    expect(await fetchStatus("http://127.0.0.1:8800/login")).to.match(/^[23]\d\d$/);
  });

  it("upgrades the agent under load: no failed request, the new agent serves, PostgreSQL was adopted", async () => {
    const pgBefore = (await sh("head -n 1 /var/lib/plum/pgdata/postmaster.pid")).stdout.trim();
    // Followed as an admin would: through the restart, until the new agent has ended the trial.
    const { result, load } = await installed.underLoad(() => installed.upgradeAgent(V2, { follow: true }));
    process.stdout.write(`      agent upgrade under load: ${load.failed}/${load.total} failed, longest wait ${load.maxMs} ms\n`);
    expect(result.status, `${result.error}\n${await diagnostics()}`).to.equal("completed");
    expect(load.failed, load.errors.join("; ")).to.equal(0);
    expect(load.total).to.be.greaterThan(100);
    expect(await current()).to.equal(V2);
    expect(await agentExe()).to.equal(`/opt/plum/${V2}/node/bin/node`);
    expect(await fetchStatus("http://127.0.0.1:8800/login")).to.match(/^[23]\d\d$/);
    expect((await sh("head -n 1 /var/lib/plum/pgdata/postmaster.pid")).stdout.trim(), "the same PostgreSQL").to.equal(pgBefore);
    expect((await sh("cat /var/log/plum/agent.log")).stdout).to.include('"msg":"embedded PostgreSQL adopted from the previous agent"');
  });

  it("a new agent that exits at its start is rolled back to the previous agent, which serves again", async () => {
    const u = await installed.upgradeAgent(BROKEN);
    expect(u.status, `${u.error}\n${await diagnostics()}`).to.equal("rolled-back");
    expect(u.error).to.equal(`the new agent ${BROKEN} did not come up (it exited, or was not ready in time)`);
    expect(await current()).to.equal(V2);
    expect(await agentExe()).to.equal(`/opt/plum/${V2}/node/bin/node`);
    await waitFor("the proxy to serve", async () => (await fetchStatus("http://127.0.0.1:8080/readyz")) === "200" || undefined, { timeoutMs: 60_000 });
    expect((await sh("journalctl -u plum --no-pager -n 200", 30_000)).stdout).to.include(`plum agent guard: the new agent ${BROKEN} did not come up`);
  });

  it("a plain stop (KillMode=process) still stops the instances and PostgreSQL: the agent does it itself", async () => {
    await sh("systemctl stop plum.service plum-proxy.socket plum-console.socket", 180_000);
    // The brackets keep the pattern from matching this shell's own command line.
    const left = await sh("ps -eo pid,args | grep -E '[p]lumctl.js serve|[b]in/postgres' || true", 15_000);
    expect(left.stdout.trim()).to.equal("");
    expect((await sh("systemctl show plum -p Result --value")).stdout.trim()).to.equal("success");
  });
});
