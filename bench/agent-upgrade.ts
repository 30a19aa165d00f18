// The agent upgrade under load, on a booted Debian with systemd as PID 1 (a systemd-nspawn machine: these
// machines do not run systemd as PID 1), installed offline from the install bundle: steady load through the edge
// proxy for a baseline, then across `plumctl upgrade start` of a bundle that carries a newer agent (handover
// restart on systemd's sockets, adoption of the instance and PostgreSQL, the trial ended by the new agent).
// Prints for both phases: requests, failed requests, p50 / p99 / longest wait, and the upgrade phase's against the
// baseline (goal: 0 failed; the pause a client sees is the longest wait). Asserts nothing.
// Its own file beside bench/upgrade.ts (product upgrades, on agents started by hand): this one needs root, the
// nspawn machine and the install bundle. Run: sudo npx tsx bench/agent-upgrade.ts   (BENCH_BASELINE_SECONDS, default 20)
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { installedHost, type LoadFigures } from "../test/support/installed-host.ts";
import { RUN_DIR_ENV } from "../test/support/run-dir.ts";

const BASELINE_SECONDS = Number(process.env.BENCH_BASELINE_SECONDS ?? 20);

function line(name: string, f: LoadFigures, base?: LoadFigures): string {
  const ratio = (a: number, b: number) => (b > 0 ? ` (${(a / b).toFixed(1)}×)` : "");
  return (
    `${name.padEnd(16)} ${String(f.failed).padStart(4)}/${String(f.total).padEnd(7)} failed   ` +
    `p50 ${f.p50Ms} ms${base ? ratio(f.p50Ms, base.p50Ms) : ""}   p99 ${f.p99Ms} ms${base ? ratio(f.p99Ms, base.p99Ms) : ""}   ` +
    `longest ${f.maxMs} ms${base ? ratio(f.maxMs, base.maxMs) : ""}`
  );
}

// The test support keeps its keys and trees in a run folder, which mocha's global setup makes for tests.
const ownRunDir = !process.env[RUN_DIR_ENV];
if (ownRunDir) {
  process.env[RUN_DIR_ENV] = mkdtempSync(path.join(tmpdir(), "plum-bench-run-"));
  chmodSync(process.env[RUN_DIR_ENV], 0o755);
}
const started = Date.now();
const installed = await installedHost([{ version: "0.9.1" }]).catch((err) => {
  if (ownRunDir) rmSync(process.env[RUN_DIR_ENV]!, { recursive: true, force: true });
  throw err;
});
try {
  process.stderr.write(`installed in ${((Date.now() - started) / 1000).toFixed(0)} s; baseline ${BASELINE_SECONDS} s of load\n`);
  const baseline = await installed.underLoad(() => new Promise((r) => setTimeout(r, BASELINE_SECONDS * 1000)));
  const upgrade = await installed.underLoad(async () => {
    const t0 = Date.now();
    const u = await installed.upgradeAgent("0.9.1", { follow: true });
    return { ...u, seconds: (Date.now() - t0) / 1000 };
  });
  process.stdout.write(
    [
      "",
      `agent upgrade 0.9.0 → 0.9.1: ${upgrade.result.status} in ${upgrade.result.seconds.toFixed(1)} s (plumctl upgrade start to the trial's end)`,
      line("baseline", baseline.load),
      line("agent upgrade", upgrade.load, baseline.load),
      ...(upgrade.load.errors.length > 0 ? [`  errors: ${upgrade.load.errors.join("; ")}`] : []),
      "",
    ].join("\n"),
  );
} finally {
  await installed.stop();
  if (ownRunDir) rmSync(process.env[RUN_DIR_ENV]!, { recursive: true, force: true });
}
