import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { waitFor } from "../../lib/wait.ts";
import { buildInstallBundle } from "../../installer/install-bundle-builder.ts";
import { bootSystemdHost, defaultSystemdCacheDir, type SystemdHost } from "./systemd-container.ts";
import { buildTestBundle, checkoutDist, testVendorKeys } from "./test-bundles.ts";

/**
 * Requests through the edge proxy from the machine's own network (4 keep-alive connections, closed loop) until
 * `stopFile` exists: totals, failures and latencies, written to `outFile`. Run with the host's node.
 */
const LOAD = `
const [port, stopFile, outFile] = process.argv.slice(2);
const fs = require("node:fs");
const http = require("node:http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
const r = { total: 0, failed: 0, errors: [], ms: [] };
const one = () => new Promise((resolve) => {
  const t0 = Date.now();
  const req = http.get({ host: "127.0.0.1", port, path: "/readyz", agent, timeout: 120000 }, (res) => {
    res.resume();
    res.on("end", () => { r.total++; if (res.statusCode !== 200) { r.failed++; r.errors.push("status " + res.statusCode); } r.ms.push(Date.now() - t0); resolve(); });
  });
  req.on("error", (e) => { r.total++; r.failed++; r.errors.push(e.message); resolve(); });
});
(async () => {
  await Promise.all([0, 1, 2, 3].map(async () => { while (!fs.existsSync(stopFile)) await one(); }));
  const sorted = r.ms.sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  fs.writeFileSync(outFile, JSON.stringify({ total: r.total, failed: r.failed, errors: r.errors.slice(0, 20), p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted[sorted.length - 1] ?? 0 }));
})();
`;

export interface LoadFigures {
  total: number;
  failed: number;
  errors: string[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface InstalledHost {
  host: SystemdHost;
  /** A shell command inside the machine (its PATH has the installed plumctl). */
  sh(script: string, timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  /** `work` run while load goes through the edge proxy (from 2 s before it until it ends). */
  underLoad<T>(work: () => Promise<T>): Promise<{ result: T; load: LoadFigures }>;
  /** The agent upgrade of `version` (imported), until its journal row settles. */
  upgradeAgent(version: string, opts?: { follow?: boolean }): Promise<{ status: string; error: string | null }>;
  stop(): Promise<void>;
}

export const INSTALLED = "0.9.0";

/**
 * A booted Debian with systemd as PID 1, installed offline from plum-install-0.9.0.tar (`sh install.sh
 * --fingerprint …`), with agent bundles of `agentReleases` (built with --agent, compression level 1, each with
 * its patch) imported. The bundles are built while the machine's rootfs is checked.
 */
export async function installedHost(agentReleases: Array<{ version: string; patch?: (tree: string) => void }>): Promise<InstalledHost> {
  const work = mkdtempSync(path.join(tmpdir(), "plum-installed-host-"));
  let host: SystemdHost | undefined;
  try {
    const keys = testVendorKeys();
    const [install] = await Promise.all([
      buildInstallBundle({
        version: INSTALLED,
        outDir: work,
        signingKey: keys.privateKey,
        debCache: path.join(defaultSystemdCacheDir(), "install-debs"),
        compiledDist: await checkoutDist(),
        compressionLevel: 1,
      }),
      ...agentReleases.map((r) => buildTestBundle({ version: r.version, key: keys.privateKey, outDir: work, agent: true, patch: r.patch })),
    ]);
    const booted = await bootSystemdHost({ cacheDir: defaultSystemdCacheDir() });
    host = booted;
    const sh = (script: string, timeoutMs = 120_000) => booted.exec(["sh", "-c", script], { timeoutMs, what: script });
    booted.copyIn(install.file, `/root/${path.basename(install.file)}`);
    await sh(`cd /root && tar -xf ${path.basename(install.file)} install.sh && sh install.sh --fingerprint '${install.fingerprint}' < /dev/null`, 15 * 60_000);
    // Where the agent can read them: the service sees neither /root (ProtectHome) nor the host's /tmp (PrivateTmp).
    await sh("mkdir -p /var/lib/plum/incoming");
    for (const r of agentReleases) {
      booted.copyIn(path.join(work, `plum-${r.version}.tar`), `/var/lib/plum/incoming/plum-${r.version}.tar`);
      await sh(`plumctl release import /var/lib/plum/incoming/plum-${r.version}.tar`, 5 * 60_000);
    }
    const history = async () =>
      JSON.parse((await sh("plumctl upgrade history --json")).stdout) as Array<{ kind: string; toVersion: string; status: string; error: string | null }>;
    return {
      host: booted,
      sh,
      async underLoad(run) {
        const stopFile = path.join(work, `stop-${Date.now()}`);
        const outFile = `${stopFile}.json`;
        writeFileSync(path.join(work, "load.cjs"), LOAD);
        const load = booted.execInNetwork([process.execPath, path.join(work, "load.cjs"), "8080", stopFile, outFile], { timeoutMs: 15 * 60_000 });
        await new Promise((r) => setTimeout(r, 2000));
        let result: Awaited<ReturnType<typeof run>>;
        try {
          result = await run();
        } finally {
          writeFileSync(stopFile, "");
          await load.catch(() => undefined);
        }
        return { result, load: JSON.parse(readFileSync(outFile, "utf8")) as LoadFigures };
      },
      async upgradeAgent(version, opts = {}) {
        await sh(`plumctl upgrade start ${version} ${opts.follow ? "--timeout 240" : "--no-follow"}`, 300_000).catch((err) => {
          if (!opts.follow) throw err; // followed: a rolled-back upgrade exits 1, which the journal says below
        });
        return waitFor(
          `the agent upgrade to ${version} to settle`,
          async () => {
            const u = (await history()).find((x) => x.kind === "agent" && x.toVersion === version);
            return u && ["completed", "rolled-back", "failed"].includes(u.status) ? u : undefined;
          },
          { timeoutMs: 4 * 60_000, maxDelayMs: 2000 },
        );
      },
      async stop() {
        await booted.stop();
        rmSync(work, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await host?.stop();
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
}
