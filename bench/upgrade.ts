// Steady load through the edge proxy while a real agent promotes a release, rolls one back on a soak breach,
// and switches back by hand (`plumctl rollback --to`), then the stage step's time for two database sizes.
// Prints, per phase: requests sent, non-2xx answers, socket errors; per switch of the proxy: the requests that
// completed within ±2 s of it and the longest of them; the time from a soak breach to the old version serving
// (the report's figure and one measured from outside by polling /version); and stage times, with the data-diff
// gate's fingerprinting as a share of the stage step (goal: at most 25 %). Asserts nothing.
// Loopback only (the docker driver's instances sit on a bridge network of the bench's own dockerd, in namespaces
// it made); the load and every wait have deadlines. Run: npx tsx bench/upgrade.ts [--driver process|docker|both]
//   --driver: the runtime driver of the agents (default both: process first, then docker on a dockerd the bench
//   starts and stops, its data root in the bench's run folder); the summary prints both side by side, each
//   switch's longest request against the steady 2 s before its window (goals: ≤ 250 ms and ≤ 1.5×), and for
//   docker the container start → instance answering /healthz (goal ≤ 3 s)
//   BENCH_SMALL (participants, default 2,000), BENCH_LARGE (default 50,000: a 58 MiB product database),
//   BENCH_HUGE (participants for a third stage case, default none: 900,000 gives 886 MiB; demo data alone ~4 min),
//   BENCH_SOAK_SECONDS (default 20), BENCH_STAGE_ONLY=1 (only the stage figures, no load phases)
// The load is closed-loop (each connection sends its next request when the last one is answered): autocannon's
// own rate limit sends each second's share in a burst, which would put queueing of its own into every figure.
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { sleep, withDeadline } from "../lib/wait.ts";
import type { Upgrade } from "../appliance/upgrade/upgrade-journal.ts";
import { removeHome, startAgentProcess, tempHome, type AgentProcess } from "../test/support/agent-process.ts";
import { plumctl } from "../test/support/plumctl.ts";
import { freePort } from "../test/support/ports.ts";
import { addMigration, compose, unhealthyInProductionAfter } from "../test/support/release-patches.ts";
import { RUN_DIR_ENV } from "../test/support/run-dir.ts";
import { startTestDockerEngine, stopTestDockerEngine, type TestDockerEngine } from "../test/support/docker-engine.ts";
import { connectDocker, watchEngineEvents } from "../lib/docker/engine.ts";
import { buildTestBundle, testVendorKeys } from "../test/support/test-bundles.ts";
import { fmt } from "./support.ts";

const SMALL = Number(process.env.BENCH_SMALL ?? 2_000);
const LARGE = Number(process.env.BENCH_LARGE ?? 50_000);
const HUGE = Number(process.env.BENCH_HUGE ?? 0);
const STAGE_ONLY = process.env.BENCH_STAGE_ONLY === "1";
const LOAD_ONLY = process.env.BENCH_LOAD_ONLY === "1";
/** A folder to write each phase's requests (CSV), the agent's output and the instance logs into, for a closer look. */
const DUMP_DIR = process.env.BENCH_DUMP_DIR;
const SOAK_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 20);
const CONNECTIONS = 50;
const WINDOW_MS = 2_000;
const POLL_MS = 20;
/** The switch goals: the longest request within ±2 s of a switch, in ms and against the steady 2 s before. */
const GOAL_MS = 250;
const GOAL_RATIO = 1.5;
/** Load before an upgrade starts and after it settles, so each switch sits inside steady traffic. */
const LEAD_MS = 3_000;
const TAIL_MS = 3_000;
/** Longest any one phase may take; the load generator also stops by itself after this. */
const PHASE_DEADLINE_S = 900;

// Same migrations as the e2e upgrade tests: 0.2.0 is reversible and old code runs on it (traffic-only rollback).
const V2_MIGRATION = addMigration(
  "1732000000500_release-notes",
  "create table release_notes (id serial primary key, body text not null); alter table participants add column nickname text",
  "drop table release_notes; alter table participants drop column nickname",
);
const V3_MIGRATION = addMigration("1732000000600_badges", "create table badges (id serial primary key, name text not null)", "drop table badges");

type Driver = "process" | "docker";

function driversFrom(argv: string[]): Driver[] {
  const i = argv.indexOf("--driver");
  const given = i >= 0 ? argv[i + 1] : (argv.find((a) => a.startsWith("--driver="))?.slice("--driver=".length) ?? "both");
  if (given === "both") return ["process", "docker"];
  if (given === "process" || given === "docker") return [given];
  process.stderr.write(`--driver ${given ?? ""}: say process, docker or both (the default)\n`);
  process.exit(2);
}
const DRIVERS = driversFrom(process.argv.slice(2));

// The agent must use its own embedded PostgreSQL in the temp home, never a database this shell points at.
delete process.env.PLUM_DATABASE_URL;

// ---------------------------------------------------------------------------------------------- cleanup

const agents = new Set<AgentProcess>();
const scratch = new Set<string>();
const loads = new Set<{ stop(): unknown }>();

async function cleanUp(): Promise<void> {
  for (const l of loads) l.stop();
  for (const a of agents) {
    await a.stop("SIGINT", 60_000).catch((err) => process.stderr.write(`agent did not stop cleanly: ${(err as Error).message}\n`));
    agents.delete(a);
  }
  if (engine) {
    containerStarts?.stop();
    await stopTestDockerEngine(engine).catch((err) => process.stderr.write(`the bench's dockerd did not stop cleanly: ${(err as Error).message}\n`));
    engine = undefined;
  }
  for (const dir of scratch) removeHome(dir);
  scratch.clear();
}

// ---------------------------------------------------------------------------------------------- docker

let engine: TestDockerEngine | undefined;
/** The agents' environment for the driver being measured. */
let driverEnv: Record<string, string> = {};

interface ContainerEvent {
  at: number;
  action: string;
  instance: string;
}

/** The engine's start and health events of the appliance's instance containers, with the engine's own clock. */
function watchContainers(socketPath: string) {
  const events: ContainerEvent[] = [];
  const filters = { type: ["container"], event: ["start", "health_status"], label: ["io.plum.role=instance"] };
  const watch = watchEngineEvents(
    connectDocker(socketPath),
    filters,
    (e) => events.push({ at: (e.timeNano ?? 0) / 1e6, action: e.Action ?? "?", instance: e.Actor?.Attributes?.["io.plum.instance"] ?? "?" }),
    (err) => err && process.stderr.write(`no engine events: ${err.message}\n`),
  );
  return { events, stop: () => watch.stop() };
}
let containerStarts: ReturnType<typeof watchContainers> | undefined;

interface StartFigure {
  instance: string;
  /** Engine "start" event → the runtime's "instance started" line (its probe of /healthz answered). */
  toHealthzMs?: number;
  /** Engine "start" event → Docker's own healthcheck reported healthy (its first check runs one interval in). */
  toDockerHealthyMs?: number;
}

/** For each container started: how long until it answered, from the engine's events and the agent's log. */
function startFigures(events: ContainerEvent[], agentOutput: string): StartFigure[] {
  const started: Array<{ at: number; instance: string }> = [];
  for (const line of agentOutput.split("\n")) {
    if (!line.includes('"instance started"')) continue;
    try {
      const e = JSON.parse(line) as { time: number; instance: string };
      started.push({ at: e.time, instance: e.instance });
    } catch {
      /* not a JSON line */
    }
  }
  return events
    .filter((e) => e.action === "start")
    .map((e) => {
      const healthz = started.find((x) => x.instance === e.instance && x.at >= e.at);
      const healthy = events.find((x) => x.instance === e.instance && x.at >= e.at && x.action === "health_status: healthy");
      return { instance: e.instance, toHealthzMs: healthz && healthz.at - e.at, toDockerHealthyMs: healthy && healthy.at - e.at };
    });
}

let interrupted = false;
process.once("SIGINT", () => {
  interrupted = true;
  process.stderr.write("\ninterrupted: stopping the load and the agents, removing the temp homes…\n");
  void cleanUp().finally(() => process.exit(130));
});

// ---------------------------------------------------------------------------------------------- appliance

interface Appliance {
  agent: AgentProcess;
  env: Record<string, string>;
}

/** The lines of an agent's output that are safe to show: a fresh home prints one-time passwords. */
function redacted(text: string): string {
  return text
    .split("\n")
    .filter((l) => !/password|secret|token/i.test(l))
    .slice(-40)
    .join("\n");
}

async function cli(app: Appliance, args: string[], timeoutMs: number, okCodes = [0]): Promise<{ code: number; stdout: string }> {
  const res = await plumctl(args, app.env, timeoutMs);
  if (!okCodes.includes(res.code)) {
    throw new Error(`plumctl ${args.join(" ")} exited with ${res.code}:\n${redacted(res.stdout + res.stderr)}\n--- agent ---\n${redacted(app.agent.output())}`);
  }
  return res;
}

async function startAppliance(participants: number, soakSeconds: number): Promise<Appliance> {
  const home = tempHome();
  scratch.add(home);
  const env = {
    PLUM_HOME: home,
    PLUM_VENDOR_PUBLIC_KEY: testVendorKeys().publicKeyPem,
    PLUM_PG_PORT: String(await freePort()),
    PLUM_UPGRADE_PROMOTION: "now",
    PLUM_UPGRADE_SOAK_SECONDS: String(soakSeconds),
    ...driverEnv,
  };
  const agent = await startAgentProcess({ home, env, timeoutMs: 180_000 });
  agents.add(agent);
  const app = { agent, env };
  const started = Date.now();
  // Its stdout names a manager's one-time password: never printed.
  await cli(app, ["demo-data", "--participants", String(participants)], 900_000);
  process.stdout.write(`  ${participants.toLocaleString("en-GB")} participants of demo data in ${fmt((Date.now() - started) / 1000)} s\n`);
  return app;
}

async function stopAppliance(app: Appliance): Promise<void> {
  await app.agent.stop("SIGINT", 60_000);
  agents.delete(app.agent);
  removeHome(app.agent.home);
  scratch.delete(app.agent.home);
}

async function latest(app: Appliance): Promise<Upgrade> {
  const res = await cli(app, ["upgrade", "status", "--json"], 60_000);
  return (JSON.parse(res.stdout) as { latest: Upgrade }).latest;
}

// ---------------------------------------------------------------------------------------------- load

interface Samples {
  at: number[];
  status: number[];
  ms: number[];
  version: string[];
  path: string[];
}
interface SocketError {
  at: number;
  path: string;
  what: string;
}

/**
 * Two autocannon instances (half the connections each): /version (no database; its body names the version that
 * answered) and /readyz (one query). Every response is recorded with this process's wall clock, so it can be
 * placed against the switch times in the upgrade report (the agent is on the same machine, same clock).
 */
function startLoad(proxyUrl: string) {
  const samples: Samples = { at: [], status: [], ms: [], version: [], path: [] };
  const socketErrors: SocketError[] = [];
  const results: Promise<autocannon.Result>[] = [];
  const instances: autocannon.Instance[] = [];
  for (const p of ["/version", "/readyz"]) {
    const connections = CONNECTIONS / 2;
    results.push(
      new Promise((resolve, reject) => {
        const instance = autocannon(
          {
            url: new URL(p, proxyUrl).href,
            connections,
            duration: PHASE_DEADLINE_S,
            timeout: 10,
            setupClient(client) {
              let version = "";
              if (p === "/version") {
                client.on("body", (body: Buffer) => {
                  version = /"version":"([^"]+)"/.exec(body.toString())?.[1] ?? "?";
                });
              }
              client.on("response", (status: number, _bytes: number, ms: number) => {
                samples.at.push(Date.now());
                samples.status.push(status);
                samples.ms.push(ms);
                samples.version.push(status < 300 ? version : "");
                samples.path.push(p);
                version = "";
              });
              // autocannon's clients emit these too, but its typings only declare headers/body/response.
              const events = client as NodeJS.EventEmitter;
              events.on("connError", (err: NodeJS.ErrnoException) => socketErrors.push({ at: Date.now(), path: p, what: err.code ?? err.message }));
              events.on("timeout", () => socketErrors.push({ at: Date.now(), path: p, what: "timeout (10 s)" }));
            },
          },
          (err, result) => (err ? reject(err) : resolve(result)),
        );
        instances.push(instance);
      }),
    );
  }
  const handle = {
    samples,
    socketErrors,
    stop() {
      for (const i of instances) i.stop();
    },
    async finish(): Promise<autocannon.Result[]> {
      handle.stop();
      loads.delete(handle);
      return withDeadline("the load generator to stop", 30_000, Promise.all(results));
    },
  };
  loads.add(handle);
  return handle;
}

interface Poll {
  sentAt: number;
  at: number;
  version?: string;
  error?: string;
}

/** GET /version every 20 ms on its own connection: which version answers, seen from outside, over time. */
function startPoller(proxyUrl: string) {
  const polls: Poll[] = [];
  let stopped = false;
  const url = new URL("/version", proxyUrl);
  const done = (async () => {
    while (!stopped) {
      const sentAt = Date.now();
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        const body = (await res.json().catch(() => ({}))) as { version?: string };
        polls.push({ sentAt, at: Date.now(), ...(res.ok ? { version: body.version } : { error: `HTTP ${res.status}` }) });
      } catch (err) {
        polls.push({
          sentAt,
          at: Date.now(),
          error: (err as Error).name === "TimeoutError" ? "timeout (2 s)" : String((err as Error).cause ?? (err as Error).message),
        });
      }
      await sleep(Math.max(0, sentAt + POLL_MS - Date.now()));
    }
  })();
  const handle = {
    polls,
    stop() {
      stopped = true;
    },
    async finish() {
      stopped = true;
      loads.delete(handle);
      await withDeadline("the /version poller to stop", 10_000, done);
      return polls;
    },
  };
  loads.add(handle);
  return handle;
}

interface LagSample {
  at: number;
  /** The agent's (edge proxy's) longest event-loop delay since the last sample, ms. */
  agentMs?: number;
  /** The serving instance's (its /metrics through the proxy), and which version it is. */
  instanceMs?: number;
  instanceVersion?: string;
  /** CPU ms used since the sample before: per process (agent, bench, each instance by id) and the whole machine's busy share. */
  cpu: Record<string, number>;
  machineBusy?: number;
}

/** utime + stime of a process in ms (clock ticks of 10 ms), from /proc; undefined once it is gone. */
function cpuMsOf(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3] - cpu[4], total };
}

/**
 * BENCH_DUMP_DIR only: every 250 ms, the longest event-loop delay since the sample before in the agent (its
 * console's /metrics) and in the instance that serves (/metrics through the proxy; prom-client resets the
 * histogram at each scrape).
 */
function startLagSampler(app: Appliance) {
  const lags: LagSample[] = [];
  let stopped = !DUMP_DIR;
  const maxLag = (text: string, name: string) => {
    const m = new RegExp(`^${name}\\{?[^\\n]*?\\}? ([0-9.e+-]+)$`, "m").exec(text);
    return m ? Number(m[1]) * 1000 : undefined;
  };
  const scrape = async (url: string) => {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      return await res.text();
    } catch {
      return "";
    }
  };
  const last: Record<string, number> = {};
  let lastMachine = machineTicks();
  const cpuSince = (): Record<string, number> => {
    const pids: Record<string, number> = { agent: app.agent.agentPid(), bench: process.pid };
    for (const line of app.agent.output().split("\n")) {
      const m = /"instance":"([^"]+)","pid":(\d+)/.exec(line);
      if (m && line.includes("instance started")) pids[m[1]] = Number(m[2]);
    }
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries(pids)) {
      const ms = cpuMsOf(pid);
      if (ms === undefined) continue;
      const key = `${name}:${pid}`;
      if (last[key] !== undefined) out[name] = ms - last[key];
      last[key] = ms;
    }
    return out;
  };
  const done = (async () => {
    while (!stopped) {
      const at = Date.now();
      const cpu = cpuSince();
      const machine = machineTicks();
      const machineBusy = (machine.busy - lastMachine.busy) / Math.max(1, machine.total - lastMachine.total);
      lastMachine = machine;
      const [agent, instance] = await Promise.all([
        scrape(new URL("/metrics", app.agent.consoleUrl).href),
        scrape(new URL("/metrics", app.agent.proxyUrl).href),
      ]);
      lags.push({
        at,
        agentMs: maxLag(agent, "plum_agent_nodejs_eventloop_lag_max_seconds"),
        instanceMs: maxLag(instance, "nodejs_eventloop_lag_max_seconds"),
        instanceVersion: /nodejs_eventloop_lag_max_seconds\{[^}]*version="([^"]+)"/.exec(instance)?.[1],
        cpu,
        machineBusy,
      });
      await sleep(Math.max(0, at + 250 - Date.now()));
    }
  })();
  return {
    lags,
    async finish() {
      stopped = true;
      await withDeadline("the event-loop sampler to stop", 10_000, done);
      return lags;
    },
  };
}

// ---------------------------------------------------------------------------------------------- phases

interface Switch {
  label: string;
  at: number;
  source: string;
}
interface PhaseFigures {
  name: string;
  sent: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  samples: Samples;
  socketErrors: SocketError[];
  polls: Poll[];
  switches: Switch[];
  /** Lines the agent wrote during the phase about requests it could not pass on, with their time. */
  proxyWarnings: Array<{ at: number; line: string }>;
  lags: LagSample[];
  /** When the load generator was stopped: it drops the requests it has in flight, which the proxy then logs. */
  loadStoppedAt: number;
  upgrade: Upgrade;
  breach?: { reportSeconds?: number; measuredSeconds?: number; pollsAfterBreach: number; firstOld?: Poll; trafficBackAt: number };
}

/** The times the agent logged "edge proxy switched" (pino JSON lines), with their target. */
function loggedSwitches(output: string): Array<{ at: number; to: string }> {
  const found: Array<{ at: number; to: string }> = [];
  for (const line of output.split("\n")) {
    if (!line.includes("edge proxy switched")) continue;
    try {
      const entry = JSON.parse(line) as { time: number; to: string };
      found.push({ at: entry.time, to: entry.to });
    } catch {
      /* not a JSON line */
    }
  }
  return found;
}

async function underLoad(
  app: Appliance,
  name: string,
  action: () => Promise<unknown>,
): Promise<Omit<PhaseFigures, "switches" | "upgrade"> & { logged: Array<{ at: number; to: string }> }> {
  process.stdout.write(`\n${name}: load on ${app.agent.proxyUrl} (${CONNECTIONS} connections)…\n`);
  const outputBefore = app.agent.output().length;
  const load = startLoad(app.agent.proxyUrl);
  const poller = startPoller(app.agent.proxyUrl);
  const lagSampler = startLagSampler(app);
  let results: autocannon.Result[];
  let polls: Poll[];
  let loadStoppedAt: number;
  try {
    await sleep(LEAD_MS);
    await withDeadline(name, PHASE_DEADLINE_S * 1000, action());
    await sleep(TAIL_MS);
  } finally {
    loadStoppedAt = Date.now();
    [results, polls] = await Promise.all([load.finish(), poller.finish()]);
    await lagSampler.finish();
  }
  await sleep(1_000); // the agent's log lines about the dropped requests arrive a moment later
  const during = app.agent.output().slice(outputBefore);
  const sum = (pick: (r: autocannon.Result) => number) => results.reduce((n, r) => n + pick(r), 0);
  return {
    name,
    sent: sum((r) => r.requests.sent),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    samples: load.samples,
    socketErrors: load.socketErrors,
    polls,
    proxyWarnings: during
      .split("\n")
      .filter((l) => /upstream request failed|did not stop in time/.test(l))
      .map((line) => ({ at: Number(/"time":(\d+)/.exec(line)?.[1] ?? 0), line })),
    loadStoppedAt,
    lags: lagSampler.lags,
    logged: loggedSwitches(during),
  };
}

/**
 * When the proxy switched to `to`: the agent's own "edge proxy switched" line (the assignment itself); the report's
 * times come later (a promote step's end is after the audit entry, a manual rollback's after the drain and stop).
 */
function switchOf(logged: Array<{ at: number; to: string }>, label: string, to: string, reportAt: string | undefined, reportSource: string): Switch {
  const line = logged.find((l) => l.to === to);
  return line ? { label, at: line.at, source: 'agent log "edge proxy switched"' } : { label, at: iso(reportAt), source: reportSource };
}

function iso(at: string | undefined): number {
  if (!at) throw new Error("the upgrade report has no time for this switch");
  return Date.parse(at);
}

// ---------------------------------------------------------------------------------------------- analysis

const BUCKET_MS = 500;

interface WindowFigures {
  completed: number;
  non2xx: number;
  socketErrors: number;
  longestMs: number;
  /** The longest request per path, and when it completed relative to the switch. */
  longest: Record<string, { ms: number; offsetMs: number }>;
  /** Completions and the longest request per 500 ms from -2 s to +2 s: where in the window the slow ones sit. */
  buckets: Array<{ completed: number; longestMs: number }>;
}

function aroundSwitch(f: PhaseFigures, at: number): WindowFigures {
  const w: WindowFigures = {
    completed: 0,
    non2xx: 0,
    socketErrors: 0,
    longestMs: 0,
    longest: {},
    buckets: Array.from({ length: (2 * WINDOW_MS) / BUCKET_MS }, () => ({ completed: 0, longestMs: 0 })),
  };
  const { samples } = f;
  for (let i = 0; i < samples.at.length; i++) {
    const offset = samples.at[i] - at;
    if (Math.abs(offset) > WINDOW_MS) continue;
    w.completed++;
    if (samples.status[i] < 200 || samples.status[i] >= 300) w.non2xx++;
    w.longestMs = Math.max(w.longestMs, samples.ms[i]);
    const p = samples.path[i];
    if (!w.longest[p] || samples.ms[i] > w.longest[p].ms) w.longest[p] = { ms: samples.ms[i], offsetMs: offset };
    const b = w.buckets[Math.min(w.buckets.length - 1, Math.floor((offset + WINDOW_MS) / BUCKET_MS))];
    b.completed++;
    b.longestMs = Math.max(b.longestMs, samples.ms[i]);
  }
  w.socketErrors = f.socketErrors.filter((e) => Math.abs(e.at - at) <= WINDOW_MS).length;
  return w;
}

function countBy<T>(items: T[], key: (t: T) => string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) {
    const k = key(item);
    if (k !== undefined) out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

const signed = (ms: number) => `${ms >= 0 ? "+" : ""}${ms}`;
const show = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([k, n]) => `${k}: ${n.toLocaleString("en-GB")}`)
    .join(", ") || "none";

/** Where a failed request sits relative to the nearest switch, for the failure listing. */
function relative(f: PhaseFigures, at: number): string {
  const nearest = f.switches.reduce((best, s) => (Math.abs(s.at - at) < Math.abs(best.at - at) ? s : best), f.switches[0]);
  const ms = at - nearest.at;
  return `${ms >= 0 ? "+" : ""}${ms} ms from "${nearest.label}"`;
}

// ---------------------------------------------------------------------------------------------- main

// The test support builds bundles and the compiled plumctl in a run folder, as mocha's global setup makes one.
if (!process.env[RUN_DIR_ENV]) {
  process.env[RUN_DIR_ENV] = mkdtempSync(path.join(tmpdir(), "plum-bench-run-"));
  // As mocha's global setup does: instances run as an unprivileged user (as root), who must reach the compiled tree.
  chmodSync(process.env[RUN_DIR_ENV], 0o755);
  scratch.add(process.env[RUN_DIR_ENV]);
}
const bundleDir = mkdtempSync(path.join(tmpdir(), "plum-bench-bundles-"));
scratch.add(bundleDir);
let phases: PhaseFigures[] = [];
type StageRow = {
  label: string;
  participants: number;
  stageSeconds?: number;
  stagingMigrationSeconds?: number;
  snapshotSeconds?: number;
  databaseMiB?: number;
  /** The data-diff gate's fingerprints: before (taken by the restore's verification) and after the migrations. */
  fingerprintBefore?: number;
  fingerprintAfter?: number;
  fingerprintRows?: number;
};
let stages: StageRow[] = [];
const runs: Array<{ driver: Driver; phases: PhaseFigures[]; stages: StageRow[]; starts: StartFigure[] }> = [];

/** The stage figures of an upgrade's report, with the product database size from the verify step's disk check. */
function stageFigures(label: string, participants: number, u: Upgrade) {
  const checks = ((u.report.steps.verify?.detail as { checks?: string[] } | undefined)?.checks ?? []).join(" ");
  const needed = /(\d+) MiB needed for a staging copy/.exec(checks)?.[1];
  stages.push({
    label,
    participants,
    stageSeconds: u.report.steps.stage?.seconds,
    stagingMigrationSeconds: u.report.migrations?.staging?.seconds,
    snapshotSeconds: u.report.steps.snapshot?.seconds,
    // verify asks for twice the database plus 200 MiB: the size, read back from that check.
    databaseMiB: needed ? (Number(needed) - 200) / 2 : undefined,
    fingerprintBefore: u.report.dataGate?.before?.seconds,
    fingerprintAfter: u.report.dataGate?.after?.seconds,
    fingerprintRows: u.report.dataGate?.after?.rows,
  });
}

try {
  const { privateKey } = testVendorKeys();
  process.stdout.write("building release bundles 0.2.0 and 0.3.0 (compiles the tree twice)…\n");
  const v2 = await buildTestBundle({ version: "0.2.0", patch: V2_MIGRATION, key: privateKey, outDir: bundleDir });
  const v3 = await buildTestBundle({
    version: "0.3.0",
    patch: compose(V2_MIGRATION, V3_MIGRATION, unhealthyInProductionAfter(3000)),
    key: privateKey,
    outDir: bundleDir,
  });

  for (const driver of DRIVERS) {
    if (interrupted) break;
    process.stdout.write(`\n##### runtime driver: ${driver}\n`);
    phases = [];
    stages = [];
    driverEnv = {};
    if (driver === "docker") {
      const started = Date.now();
      engine = await startTestDockerEngine(process.env[RUN_DIR_ENV]!, { reuse: false });
      process.stdout.write(`  dockerd of the bench answering in ${fmt((Date.now() - started) / 1000)} s (network ${engine.network})\n`);
      driverEnv = { PLUM_RUNTIME: "docker", PLUM_DOCKER_SOCKET: engine.socketPath, PLUM_DOCKER_NETWORK: engine.network };
      containerStarts = watchContainers(engine.socketPath);
    }
    let agentOutput = "";
    // (1) Small database: promote, a soak breach that rolls back, a manual rollback, each under load.
    if (!STAGE_ONLY) agentOutput += await loadPhases(v2, v3);

    // (2) Stage time by database size, without load and without a soak: a fresh appliance each.
    for (const [label, participants] of LOAD_ONLY ? [] : ([["small", SMALL], ["large", LARGE], ...(HUGE > 0 ? [["huge", HUGE] as const] : [])] as const)) {
      if (interrupted) break;
      process.stdout.write(`\n${label} appliance for the stage time (${participants.toLocaleString("en-GB")} participants, no load)…\n`);
      const app = await startAppliance(participants, 0);
      await cli(app, ["release", "import", v2], 180_000);
      const started = Date.now();
      await cli(app, ["upgrade", "start", "0.2.0", "--now"], PHASE_DEADLINE_S * 1000);
      process.stdout.write(`  upgrade to 0.2.0 in ${fmt((Date.now() - started) / 1000)} s\n`);
      stageFigures(`${label}, no load`, participants, await latest(app));
      agentOutput += app.agent.output();
      await stopAppliance(app);
    }
    const starts = containerStarts ? startFigures(containerStarts.events, agentOutput) : [];
    runs.push({ driver, phases, stages, starts });
    process.stdout.write(`\n##### ${driver}: figures\n`);
    report();
    if (engine) {
      containerStarts?.stop();
      containerStarts = undefined;
      await stopTestDockerEngine(engine);
      engine = undefined;
    }
  }
  sideBySide();
} finally {
  if (!interrupted) await cleanUp();
}

/** The load phases on one small appliance; returns the agent's output (for the container start figures). */
async function loadPhases(v2: string, v3: string): Promise<string> {
  process.stdout.write(`\nsmall appliance (${SMALL.toLocaleString("en-GB")} participants, soak ${SOAK_SECONDS} s)…\n`);
  const small = await startAppliance(SMALL, SOAK_SECONDS);
  await cli(small, ["release", "import", v2], 180_000);
  await cli(small, ["release", "import", v3], 180_000);
  try {
    await switchPhases(small);
  } finally {
    dump(small);
  }
  const output = small.agent.output();
  await stopAppliance(small);
  return output;
}

async function switchPhases(small: Appliance): Promise<void> {
  {
    // Exit 1: the soak rolled the promotion back (a figure too: what the switch did to latency, judged by the agent).
    const p = await underLoad(small, "promote 0.1.0 → 0.2.0", () => cli(small, ["upgrade", "start", "0.2.0", "--now"], PHASE_DEADLINE_S * 1000, [0, 1]));
    const u = await latest(small);
    if (!p.logged.some((l) => l.to === "production@0.2.0") && !u.report.steps.promote?.finishedAt) {
      process.stdout.write(`  the upgrade never switched to 0.2.0 (${u.status} at ${u.step}: ${u.error ?? "?"}); the other phases need 0.2.0 serving\n`);
      return;
    }
    const f: PhaseFigures = {
      ...p,
      upgrade: u,
      switches: [switchOf(p.logged, "promote → 0.2.0", "production@0.2.0", u.report.steps.promote?.finishedAt, "report steps.promote.finishedAt")],
    };
    phases.push(f);
    stageFigures("small, under load", SMALL, u);
    if (u.status !== "completed") {
      process.stdout.write(
        `  the promotion did not complete (${u.status}: ${u.report.soak?.breach ?? u.report.rollback?.reason ?? "?"}); the other phases need 0.2.0 serving\n`,
      );
      return;
    }
  }
  {
    // 0.3.0's /healthz fails 3 s after it starts in production: 3 failed checks in a row breach the soak.
    const p = await underLoad(small, "soak breach 0.2.0 → 0.3.0 → 0.2.0", () =>
      cli(small, ["upgrade", "start", "0.3.0", "--now"], PHASE_DEADLINE_S * 1000, [0, 1]),
    );
    const u = await latest(small);
    const rb = u.report.rollback;
    const f: PhaseFigures = {
      ...p,
      upgrade: u,
      switches: [
        switchOf(p.logged, "promote → 0.3.0", "production@0.3.0", u.report.steps.promote?.finishedAt, "report steps.promote.finishedAt"),
        switchOf(p.logged, "rollback (breach) → 0.2.0", "production@0.2.0", rb?.trafficBackAt, "report rollback.trafficBackAt"),
      ],
    };
    if (rb?.breachAt) {
      // From outside: the first poll sent after the breach that 0.2.0 answered, timed to its answer.
      const breachAt = iso(rb.breachAt);
      const after = p.polls.filter((q) => q.sentAt >= breachAt);
      const back = after.find((q) => q.version === u.fromVersion);
      f.breach = {
        reportSeconds: rb.secondsToOldVersion,
        measuredSeconds: back ? (back.at - breachAt) / 1000 : undefined,
        pollsAfterBreach: after.length,
        firstOld: back,
        trafficBackAt: iso(rb.trafficBackAt),
      };
    }
    phases.push(f);
  }
  {
    const p = await underLoad(small, "manual rollback 0.2.0 → 0.1.0", () => cli(small, ["rollback", "--to", "0.1.0"], PHASE_DEADLINE_S * 1000));
    const u = await latest(small);
    const f: PhaseFigures = {
      ...p,
      upgrade: u,
      switches: [switchOf(p.logged, "manual rollback → 0.1.0", "production@0.1.0", u.report.steps.promote?.finishedAt, "report steps.promote.finishedAt")],
    };
    phases.push(f);
  }
}

/** BENCH_DUMP_DIR: every request of each phase (completion time, ms, status, path, version), the agent's output (its
 * one-time passwords left out) and the instance logs, with the switch times, for a look at one request at a time. */
function dump(app: Appliance): void {
  if (!DUMP_DIR) return;
  const dir = path.join(DUMP_DIR, driverEnv.PLUM_RUNTIME ?? "process");
  mkdirSync(dir, { recursive: true });
  phases.forEach((f, k) => {
    const lines = ["at,ms,status,path,version"];
    for (let i = 0; i < f.samples.at.length; i++)
      lines.push(`${f.samples.at[i]},${f.samples.ms[i]},${f.samples.status[i]},${f.samples.path[i]},${f.samples.version[i]}`);
    writeFileSync(path.join(dir, `phase-${k + 1}.csv`), lines.join("\n") + "\n");
    writeFileSync(
      path.join(dir, `phase-${k + 1}-lag.csv`),
      [
        "at,agentMs,instanceMs,instanceVersion,machineBusy,cpuMs",
        ...f.lags.map(
          (l) =>
            `${l.at},${l.agentMs ?? ""},${l.instanceMs ?? ""},${l.instanceVersion ?? ""},${l.machineBusy?.toFixed(2) ?? ""},${Object.entries(l.cpu)
              .map(([k, v]) => `${k}=${v}`)
              .join(" ")}`,
        ),
      ].join("\n") + "\n",
    );
  });
  writeFileSync(
    path.join(dir, "switches.json"),
    JSON.stringify(
      phases.map((f) => ({ name: f.name, switches: f.switches })),
      null,
      2,
    ),
  );
  writeFileSync(
    path.join(dir, "agent.log"),
    app.agent
      .output()
      .split("\n")
      .filter((l) => !/password|secret|token/i.test(l))
      .join("\n"),
  );
  const logs = path.join(app.agent.home, "logs", "instances");
  if (existsSync(logs)) cpSync(logs, path.join(dir, "instances"), { recursive: true });
  process.stdout.write(`  requests and logs written to ${dir}\n`);
}

// ---------------------------------------------------------------------------------------------- report

/** The longest request that completed in the steady 2 s before a switch's window ([-4 s, -2 s) from it). */
function steadyLongest(f: PhaseFigures, at: number): number {
  let longest = 0;
  for (let i = 0; i < f.samples.at.length; i++) {
    const offset = f.samples.at[i] - at;
    if (offset >= -2 * WINDOW_MS && offset < -WINDOW_MS) longest = Math.max(longest, f.samples.ms[i]);
  }
  return longest;
}

/** Both drivers' figures in one table each, a column set per driver. */
function sideBySide(): void {
  if (runs.length === 0) return;
  const out: string[] = ["", `=== side by side: ${runs.map((r) => r.driver).join(" | ")} ===`];
  const n = (x: number) => x.toLocaleString("en-GB");
  const cell = (parts: string[], widths: number[]) => parts.map((p, i) => p.padStart(widths[i])).join(" ");
  const names = [...new Set(runs.flatMap((r) => r.phases.map((f) => f.name)))];
  if (names.length > 0) {
    const w = [8, 7, 7, 12];
    out.push(`${"phase".padEnd(36)}${runs.map((r) => ` | ${cell([r.driver, "", "", ""], w)}`).join("")}`);
    out.push(`${"".padEnd(36)}${runs.map(() => ` | ${cell(["sent", "non-2xx", "errors", "outcome"], w)}`).join("")}`);
    for (const name of names) {
      out.push(
        `${name.padEnd(36)}${runs
          .map((r) => {
            const f = r.phases.find((x) => x.name === name);
            return ` | ${cell(f ? [n(f.sent), n(f.non2xx), n(f.errors + f.timeouts), f.upgrade.status] : ["-", "-", "-", "not run"], w)}`;
          })
          .join("")}`,
      );
    }
    out.push(
      "",
      `longest request within ±${WINDOW_MS / 1000} s of each switch, against the longest of the steady 2 s before that window (goals: ≤ ${GOAL_MS} ms and ≤ ${GOAL_RATIO}×)`,
    );
    const w2 = [9, 8, 8, 6, 5];
    const labels = [...new Set(runs.flatMap((r) => r.phases.flatMap((f) => f.switches.map((x) => x.label))))];
    out.push(`${"switch".padEnd(28)}${runs.map((r) => ` | ${cell([r.driver, "", "", "", ""], w2)}`).join("")}`);
    out.push(`${"".padEnd(28)}${runs.map(() => ` | ${cell(["completed", "longest", "steady", "ratio", "goal"], w2)}`).join("")}`);
    for (const label of labels) {
      out.push(
        `${label.padEnd(28)}${runs
          .map((r) => {
            const f = r.phases.find((x) => x.switches.some((y) => y.label === label));
            const sw = f?.switches.find((y) => y.label === label);
            if (!f || !sw) return ` | ${cell(["-", "-", "-", "-", "-"], w2)}`;
            const win = aroundSwitch(f, sw.at);
            const steady = steadyLongest(f, sw.at);
            const ratio = steady > 0 ? win.longestMs / steady : Infinity;
            const met = win.non2xx === 0 && win.socketErrors === 0 && win.longestMs <= GOAL_MS && ratio <= GOAL_RATIO;
            return ` | ${cell([n(win.completed), `${Math.round(win.longestMs)} ms`, `${Math.round(steady)} ms`, `${fmt(ratio, 2)}×`, met ? "met" : "missed"], w2)}`;
          })
          .join("")}`,
      );
    }
  }
  for (const r of runs.filter((x) => x.starts.length > 0)) {
    const healthz = r.starts.flatMap((x) => (x.toHealthzMs !== undefined ? [x.toHealthzMs] : [])).sort((a, b) => a - b);
    const healthy = r.starts.flatMap((x) => (x.toDockerHealthyMs !== undefined ? [x.toDockerHealthyMs] : [])).sort((a, b) => a - b);
    const summary = (xs: number[]) =>
      xs.length > 0 ? `median ${fmt(xs[Math.floor(xs.length / 2)] / 1000, 2)} s, longest ${fmt(xs[xs.length - 1] / 1000, 2)} s over ${xs.length}` : "none seen";
    out.push(
      "",
      `${r.driver}: container start to healthy (goal ≤ 3 s)`,
      `  engine "start" → the instance answers /healthz (the runtime's probe): ${summary(healthz)}`,
      `  engine "start" → Docker's own healthcheck healthy (first check one 5 s interval in): ${summary(healthy)}`,
      `  per container: ${r.starts.map((x) => `${x.instance} ${x.toHealthzMs !== undefined ? fmt(x.toHealthzMs / 1000, 2) : "?"} s`).join(", ")}`,
    );
  }
  process.stdout.write(out.join("\n") + "\n");
}
function report(): void {
  const out: string[] = [];
  const row = (cells: Array<string | number>, widths: number[]) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
  const n = (x: number) => x.toLocaleString("en-GB");

  if (phases.length > 0) loadReport(out, row, n);
  stageReport(out, row, n);
  process.stdout.write(out.join("\n") + "\n");
}

type Row = (cells: Array<string | number>, widths: number[]) => string;

function loadReport(out: string[], row: Row, n: (x: number) => string): void {
  out.push("", `=== load through the edge proxy (${CONNECTIONS} connections, closed loop: half GET /version, half GET /readyz) ===`);
  const w1 = [36, 10, 9, 14, 9, 9];
  out.push(row(["phase", "sent", "non-2xx", "socket errors", "timeouts", "outcome"], w1));
  for (const f of phases) out.push(row([f.name, n(f.sent), n(f.non2xx), n(f.errors), n(f.timeouts), f.upgrade.status], w1));

  out.push("", `=== requests completed within ±${WINDOW_MS / 1000} s of each switch of the proxy ===`);
  const w2 = [28, 11, 9, 14, 11, 0];
  out.push(row(["switch", "completed", "non-2xx", "socket errors", "longest ms", "  switch time from"], w2));
  for (const f of phases) {
    for (const s of f.switches) {
      const w = aroundSwitch(f, s.at);
      out.push(row([s.label, n(w.completed), n(w.non2xx), n(w.socketErrors), n(Math.round(w.longestMs)), `  ${s.source}`], w2));
    }
  }
  out.push(
    "",
    `longest per path (sent → completed, in ms from the switch), and per ${BUCKET_MS} ms from -${WINDOW_MS / 1000} s to +${WINDOW_MS / 1000} s: completions / longest ms`,
  );
  for (const f of phases) {
    for (const s of f.switches) {
      const w = aroundSwitch(f, s.at);
      out.push(
        `${s.label}: ${Object.entries(w.longest)
          .map(([p, l]) => `${p} ${Math.round(l.ms)} ms (${signed(Math.round(l.offsetMs - l.ms))} → ${signed(l.offsetMs)})`)
          .join(", ")}`,
      );
      out.push(`  ${w.buckets.map((b) => `${b.completed}/${Math.round(b.longestMs)}`).join("  ")}`);
    }
  }

  out.push("", "=== soak breach → old version serving ===");
  for (const f of phases.filter((x) => x.breach)) {
    const b = f.breach!;
    out.push(`report rollback.secondsToOldVersion:      ${b.reportSeconds !== undefined ? fmt(b.reportSeconds, 3) : "n/a"} s`);
    out.push(
      `measured (GET /version every ${POLL_MS} ms):   ${b.measuredSeconds !== undefined ? fmt(b.measuredSeconds, 3) : "never answered the old version"} s after rollback.breachAt (${b.pollsAfterBreach} polls after it)`,
    );
    if (b.firstOld)
      out.push(`  that poll was sent ${b.firstOld.sentAt - b.trafficBackAt} ms from rollback.trafficBackAt and took ${b.firstOld.at - b.firstOld.sentAt} ms`);
    out.push(`breach: ${f.upgrade.report.soak?.breach ?? f.upgrade.report.rollback?.reason ?? "?"}`);
  }

  out.push("", "=== which version answered GET /version ===");
  for (const f of phases) {
    const loadVersions = countBy(
      f.samples.version.filter((v) => v !== ""),
      (v) => v,
    );
    out.push(`${f.name}`);
    out.push(`  load:   ${show(loadVersions)}`);
    out.push(`  poller: ${show(countBy(f.polls, (q) => q.version ?? `error (${q.error})`))}`);
    for (const s of f.switches) {
      const target = s.label.split("→ ").pop()!;
      const firstNew = f.polls.find((q) => q.sentAt >= s.at - WINDOW_MS && q.version === target);
      if (firstNew)
        out.push(`  first poll answered by ${target} around "${s.label}": ${firstNew.at - s.at >= 0 ? "+" : ""}${firstNew.at - s.at} ms from the switch time`);
    }
  }

  const failing = phases.filter((f) => f.non2xx > 0 || f.errors > 0 || f.proxyWarnings.length > 0);
  if (failing.length > 0) {
    out.push("", "=== failed requests and proxy warnings ===");
    for (const f of failing) {
      out.push(
        `${f.name}: non-2xx by status: ${show(
          countBy(
            f.samples.status.filter((s) => s < 200 || s >= 300),
            (s) => String(s),
          ),
        )}; socket errors: ${show(countBy(f.socketErrors, (e) => `${e.path} ${e.what}`))}`,
      );
      const events = [
        ...f.samples.at.flatMap((at, i) =>
          f.samples.status[i] < 200 || f.samples.status[i] >= 300 ? [{ at, what: `HTTP ${f.samples.status[i]} after ${f.samples.ms[i]} ms` }] : [],
        ),
        ...f.socketErrors.map((e) => ({ at: e.at, what: `${e.path} ${e.what}` })),
      ].sort((a, b) => a.at - b.at);
      for (const e of events.slice(0, 10)) out.push(`  ${e.what}, ${relative(f, e.at)}`);
      if (events.length > 10) out.push(`  … ${events.length - 10} more`);
      const afterStop = f.proxyWarnings.filter((w) => w.at >= f.loadStoppedAt);
      const beforeStop = f.proxyWarnings.filter((w) => w.at < f.loadStoppedAt);
      if (afterStop.length > 0)
        out.push(
          `  agent: ${afterStop.length} "upstream request failed" lines within ${Math.max(...afterStop.map((w) => w.at - f.loadStoppedAt))} ms after the load generator was stopped (it drops its requests in flight): ${show(countBy(afterStop, (w) => /"err":"([^"]*)"/.exec(w.line)?.[1]))}`,
        );
      for (const w of beforeStop.slice(0, 5)) out.push(`  agent, ${relative(f, w.at)}: ${w.line.slice(0, 300)}`);
      if (beforeStop.length > 5) out.push(`  agent: … ${beforeStop.length - 5} more such lines`);
    }
  }
}

function stageReport(out: string[], row: Row, n: (x: number) => string): void {
  out.push("", "=== stage step by database size ===");
  const w3 = [18, 13, 13, 12, 11, 19];
  out.push(row(["appliance", "participants", "database MiB", "snapshot s", "stage s", "staging migrations s"], w3));
  for (const s of stages) {
    out.push(
      row(
        [
          s.label,
          n(s.participants),
          s.databaseMiB !== undefined ? fmt(s.databaseMiB, 0) : "?",
          s.snapshotSeconds !== undefined ? fmt(s.snapshotSeconds) : "?",
          s.stageSeconds !== undefined ? fmt(s.stageSeconds) : "?",
          s.stagingMigrationSeconds !== undefined ? fmt(s.stagingMigrationSeconds, 2) : "?",
        ],
        w3,
      ),
    );
  }

  out.push(
    "",
    "=== data-diff gate: fingerprinting staging, as a share of the stage step (goal ≤ 25 %) ===",
    "before: taken by the restore's verification against the set's manifest (it replaces a count-only check); after: once the migrations ran",
  );
  const w4 = [18, 13, 12, 10, 9, 11, 9, 14];
  out.push(row(["appliance", "database MiB", "rows", "before s", "after s", "together s", "stage s", "share of stage"], w4));
  for (const s of stages) {
    const together = s.fingerprintBefore !== undefined && s.fingerprintAfter !== undefined ? s.fingerprintBefore + s.fingerprintAfter : undefined;
    out.push(
      row(
        [
          s.label,
          s.databaseMiB !== undefined ? fmt(s.databaseMiB, 0) : "?",
          s.fingerprintRows !== undefined ? n(s.fingerprintRows) : "?",
          s.fingerprintBefore !== undefined ? fmt(s.fingerprintBefore, 2) : "?",
          s.fingerprintAfter !== undefined ? fmt(s.fingerprintAfter, 2) : "?",
          together !== undefined ? fmt(together, 2) : "?",
          s.stageSeconds !== undefined ? fmt(s.stageSeconds) : "?",
          together !== undefined && s.stageSeconds ? `${fmt((100 * together) / s.stageSeconds, 1)} %` : "?",
        ],
        w4,
      ),
    );
  }
}
