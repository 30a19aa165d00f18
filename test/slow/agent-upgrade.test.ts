import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { waitFor } from "../../lib/wait.ts";
import { buildInstallBundle } from "../../installer/install-bundle-builder.ts";
import { bootSystemdHost, defaultSystemdCacheDir, type SystemdHost } from "../support/systemd-container.ts";
import { buildTestBundle, checkoutDist, testVendorKeys } from "../support/test-bundles.ts";

const V1 = "0.9.0";
const V2 = "0.9.1";
const BROKEN = "0.9.2";

/** Requests through the edge proxy from the machine's own network, until `stopFile` exists: totals, failures, the longest wait. */
const LOAD = `
const [port, stopFile, outFile] = process.argv.slice(2);
const fs = require("node:fs");
const http = require("node:http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
const r = { total: 0, failed: 0, errors: [], maxMs: 0 };
const one = () => new Promise((resolve) => {
  const t0 = Date.now();
  const req = http.get({ host: "127.0.0.1", port, path: "/readyz", agent, timeout: 120000 }, (res) => {
    res.resume();
    res.on("end", () => { r.total++; if (res.statusCode !== 200) { r.failed++; r.errors.push("status " + res.statusCode); } r.maxMs = Math.max(r.maxMs, Date.now() - t0); resolve(); });
  });
  req.on("error", (e) => { r.total++; r.failed++; r.errors.push(e.message); resolve(); });
});
(async () => {
  await Promise.all([0, 1, 2, 3].map(async () => { while (!fs.existsSync(stopFile)) await one(); }));
  r.errors = r.errors.slice(0, 20);
  fs.writeFileSync(outFile, JSON.stringify(r));
})();
`;

/**
 * The agent upgrade on a booted Debian with systemd as PID 1: installed from the offline install bundle, then
 * upgraded to a bundle that carries a newer agent under load (no request may fail), then to one whose agent
 * exits at its start (the guard rolls back to the previous agent, which serves again).
 */
describe("agent upgrade under systemd (nspawn machine): handover restart, adoption, automatic rollback", function () {
  this.timeout(20 * 60_000);
  let host: SystemdHost;
  let work: string;
  let fingerprint: string;

  const sh = (script: string, timeoutMs = 120_000) => host.exec(["sh", "-c", script], { timeoutMs, what: script });
  const current = async () => (await sh("readlink /opt/plum/current")).stdout.trim();
  const agentExe = async () => (await sh("readlink /proc/$(systemctl show plum -p MainPID --value)/exe")).stdout.trim();
  const history = async () =>
    JSON.parse((await sh("plumctl upgrade history --json")).stdout) as Array<{ kind: string; toVersion: string; status: string; error: string | null }>;
  const underLoad = async <T>(work_: () => Promise<T>) => {
    const stopFile = path.join(work, `stop-${Date.now()}`);
    const outFile = `${stopFile}.json`;
    writeFileSync(path.join(work, "load.cjs"), LOAD);
    const load = host.execInNetwork([process.execPath, path.join(work, "load.cjs"), "8080", stopFile, outFile], { timeoutMs: 15 * 60_000 });
    await new Promise((r) => setTimeout(r, 2000));
    const result = await work_();
    writeFileSync(stopFile, "");
    await load;
    return { result, load: JSON.parse(readFileSync(outFile, "utf8")) as { total: number; failed: number; errors: string[]; maxMs: number } };
  };
  const diagnostics = async () =>
    (
      await host.exec(
        [
          "sh",
          "-c",
          "readlink /opt/plum/current; ls -la /var/lib/plum/run; cat /var/lib/plum/run/agent-trial /var/lib/plum/run/agent-rollback 2>&1; plumctl upgrade history 2>&1 | head; systemctl status plum --no-pager 2>&1 | head -20; journalctl -u plum --no-pager -n 80; grep -h '\"level\":[456]0' /var/log/plum/agent.log | tail -20",
        ],
        { timeoutMs: 60_000, okCodes: [0, 1, 2, 3, 4] },
      )
    ).stdout;
  const console200 = async () => {
    const r = await host.execInNetwork([process.execPath, "-e", `fetch("http://127.0.0.1:8800/login").then((r) => process.stdout.write(String(r.status)))`], {
      timeoutMs: 15_000,
    });
    return r.stdout;
  };

  before(async function () {
    work = mkdtempSync(path.join(tmpdir(), "plum-agentup-e2e-"));
    const keys = testVendorKeys();
    const compiledDist = await checkoutDist();
    const [install] = await Promise.all([
      buildInstallBundle({
        version: V1,
        outDir: work,
        signingKey: keys.privateKey,
        debCache: path.join(defaultSystemdCacheDir(), "install-debs"),
        compiledDist,
        compressionLevel: 1,
      }),
      buildTestBundle({ version: V2, key: keys.privateKey, outDir: work, agent: true }),
      buildTestBundle({
        version: BROKEN,
        key: keys.privateKey,
        outDir: work,
        agent: true,
        patch: (tree) => {
          const file = path.join(tree, "cli", "agent-command.ts");
          const text = readFileSync(file, "utf8");
          const at = "      const { secrets } = prepareHome();";
          if (!text.includes(at)) throw new Error("patch does not apply");
          writeFileSync(file, text.replace(at, `      process.stderr.write("a broken agent\\n");\n      process.exit(3);\n${at}`));
        },
      }),
    ]);
    fingerprint = install.fingerprint;
    host = await bootSystemdHost({ cacheDir: defaultSystemdCacheDir() });
    for (const f of [path.basename(install.file), `plum-${V2}.tar`, `plum-${BROKEN}.tar`]) host.copyIn(path.join(work, f), `/root/${f}`);
  });
  after(async () => {
    await host?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("installs from the install bundle with no network; the proxy and the console answer", async () => {
    await sh(`cd /root && tar -xf plum-install-${V1}.tar install.sh && sh install.sh --fingerprint '${fingerprint}' < /dev/null`, 15 * 60_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${host.consoleTail()}`);
    });
    expect(await current()).to.equal(V1);
    expect(await console200()).to.match(/^[23]\d\d$/);
    await sh("systemctl is-active plum-proxy.socket plum-console.socket plum.service");
    // Where the agent can read them: the service sees neither /root (ProtectHome) nor the host's /tmp (PrivateTmp).
    for (const v of [V2, BROKEN])
      await sh(
        `mkdir -p /var/lib/plum/incoming && mv /root/plum-${v}.tar /var/lib/plum/incoming/ && plumctl release import /var/lib/plum/incoming/plum-${v}.tar`,
        5 * 60_000,
      );
  });

  it("upgrades the agent under load: no failed request, the new agent serves, the instance and PostgreSQL were adopted", async () => {
    const pgBefore = (await sh("head -n 1 /var/lib/plum/pgdata/postmaster.pid")).stdout.trim();
    const { load } = await underLoad(async () => {
      // Followed as an admin would: through the restart, until the new agent has ended the trial.
      const followed = await sh(`plumctl upgrade start ${V2} --timeout 240`, 300_000);
      expect(followed.stdout).to.include(`0.9.0 → ${V2}`);
      await waitFor(
        "the agent upgrade to complete",
        async () => {
          const u = (await history()).find((x) => x.kind === "agent" && x.toVersion === V2);
          if (u?.status === "failed" || u?.status === "rolled-back") throw new Error(`the agent upgrade ${u.status}: ${u.error}`);
          return u?.status === "completed" || undefined;
        },
        { timeoutMs: 3 * 60_000, maxDelayMs: 2000 },
      ).catch(async (err) => {
        throw new Error(`${(err as Error).message}\n${await diagnostics()}`);
      });
      await new Promise((r) => setTimeout(r, 3000));
    });
    process.stdout.write(`      agent upgrade under load: ${load.failed}/${load.total} failed, longest wait ${load.maxMs} ms\n`);
    expect(load.failed, load.errors.join("; ")).to.equal(0);
    expect(load.total).to.be.greaterThan(100);
    expect(await current()).to.equal(V2);
    expect(await agentExe()).to.equal(`/opt/plum/${V2}/node/bin/node`);
    expect(await console200()).to.match(/^[23]\d\d$/);
    expect((await sh("head -n 1 /var/lib/plum/pgdata/postmaster.pid")).stdout.trim(), "the same PostgreSQL").to.equal(pgBefore);
    const log = (await sh("cat /var/log/plum/agent.log")).stdout;
    expect(log).to.include('"msg":"embedded PostgreSQL adopted from the previous agent"');
  });

  it("a new agent that exits at its start is rolled back to the previous agent, which serves again", async () => {
    await sh(`plumctl upgrade start ${BROKEN} --no-follow`);
    await waitFor(
      "the guard's rollback to be recorded",
      async () => (await history()).find((x) => x.kind === "agent" && x.toVersion === BROKEN && x.status === "rolled-back") ?? undefined,
      { timeoutMs: 5 * 60_000, maxDelayMs: 2000 },
    ).catch(async (err) => {
      throw new Error(`${(err as Error).message}\n${await diagnostics()}`);
    });
    expect(await current()).to.equal(V2);
    expect(await agentExe()).to.equal(`/opt/plum/${V2}/node/bin/node`);
    await waitFor(
      "the proxy to serve",
      async () =>
        (
          await host.execInNetwork([process.execPath, "-e", `fetch("http://127.0.0.1:8080/readyz").then((r) => process.stdout.write(String(r.status)))`], {
            timeoutMs: 15_000,
          })
        ).stdout === "200" || undefined,
      { timeoutMs: 60_000 },
    );
    expect((await sh("journalctl -u plum --no-pager -n 200", 30_000)).stdout).to.include("plum agent guard: the new agent 0.9.2 did not come up");
  });

  it("a plain stop (KillMode=process) still stops the instances and PostgreSQL: the agent does it itself", async () => {
    await sh("systemctl stop plum.service plum-proxy.socket plum-console.socket", 180_000);
    // The brackets keep the pattern from matching this shell's own command line.
    const left = await host.exec(["sh", "-c", "ps -eo pid,args | grep -E '[p]lumctl.js serve|[b]in/postgres' || true"], { timeoutMs: 15_000 });
    expect(left.stdout.trim()).to.equal("");
    expect((await host.exec(["systemctl", "show", "plum", "-p", "Result", "--value"])).stdout.trim()).to.equal("success");
  });
});
