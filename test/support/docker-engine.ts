import { randomBytes, randomInt } from "node:crypto";
import { existsSync, mkdirSync, openSync, closeSync, readFileSync } from "node:fs";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type Docker from "dockerode";
import { runChild } from "../../lib/child-process.ts";
import { connectDocker, DEFAULT_DOCKER_SOCKET } from "../../lib/docker/engine.ts";
import { PlumError } from "../../lib/errors.ts";
import { isAlive } from "../../lib/processes.ts";
import { sleep, waitFor } from "../../lib/wait.ts";

/** What the test run's global setup hands its workers (env), so every suite uses one engine and one network. */
export const TEST_DOCKER_SOCKET_ENV = "PLUM_TEST_DOCKER_SOCKET";
export const TEST_DOCKER_NETWORK_ENV = "PLUM_TEST_DOCKER_NETWORK";
export const TEST_DOCKER_GATEWAY_ENV = "PLUM_TEST_DOCKER_GATEWAY";
export const TEST_DOCKER_SUBNET_ENV = "PLUM_TEST_DOCKER_SUBNET";

export interface TestDockerEngine {
  socketPath: string;
  network: string;
  gateway: string;
  subnet: string;
  /** Set when the setup started dockerd itself: stopped (and its data root removed with the run folder) at the end. */
  child?: ChildProcess;
  /** The FORWARD rule the setup added for its engine's address pool (see allowPool), removed at the end. */
  forwardRule?: string[];
}

/**
 * An engine without iptables adds no rule letting containers on one of its bridges reach each other (the
 * agent's container and its instances, a validation container and the staged instance). Where the host's
 * FORWARD policy is DROP (an engine with iptables ran here before) and bridged traffic passes through
 * iptables, allow the run engine's own address pool to itself, as an engine with iptables does per bridge.
 */
async function allowPool(pool: string): Promise<string[] | undefined> {
  const forward = await runChild(["iptables", "-S", "FORWARD"], { timeoutMs: 10_000, okCodes: [0, 1, 3, 4] }).catch(() => undefined);
  if (!forward || !/^-P FORWARD DROP$/m.test(forward.stdout)) return undefined; // no iptables, or nothing dropped
  const rule = ["FORWARD", "-s", pool, "-d", pool, "-m", "comment", "--comment", "plum test run", "-j", "ACCEPT"];
  await runChild(["iptables", "-I", ...rule], { timeoutMs: 10_000, what: "iptables -I FORWARD (the test engine's address pool)" });
  return rule;
}

async function answers(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  try {
    await connectDocker(socketPath).ping();
    return true;
  } catch {
    return false;
  }
}

/**
 * The engine the docker tests use: PLUM_TEST_DOCKER_SOCKET, else one that answers on the default socket,
 * else a dockerd this run starts as its child (data root in the run folder, its own socket, no iptables
 * rules and no default bridge, so it disturbs nothing on the host and two runs can share a machine).
 * `reuse: false` (the benchmarks): always a dockerd of its own, whatever answers elsewhere.
 */
export async function startTestDockerEngine(runDir: string, opts: { reuse?: boolean } = {}): Promise<TestDockerEngine> {
  const reuse = opts.reuse ?? true;
  const given = reuse ? process.env[TEST_DOCKER_SOCKET_ENV] : undefined;
  let socketPath = given ?? DEFAULT_DOCKER_SOCKET;
  let child: ChildProcess | undefined;
  let forwardRule: string[] | undefined;
  if (!reuse || !(await answers(socketPath))) {
    if (given) throw new PlumError(`${TEST_DOCKER_SOCKET_ENV}=${given}: no Docker engine answers there`, { hint: "start it, or unset the variable" });
    if (process.getuid?.() !== 0) {
      throw new PlumError("no Docker engine answers and the tests are not run as root, so they cannot start one", {
        hint: "run `sudo dockerd &` (Debian: apt-get install docker.io), or run the tests as root",
      });
    }
    const dir = path.join(runDir, "docker");
    mkdirSync(dir, { recursive: true });
    socketPath = path.join(dir, "docker.sock");
    // A /16 of 10.x unlikely to be in use, cut into /24 networks.
    const base = `10.${randomInt(200, 250)}.0.0/16`;
    const pool = `base=${base},size=24`;
    const log = openSync(path.join(dir, "dockerd.log"), "a");
    child = spawn(
      "dockerd",
      [
        `--data-root=${path.join(dir, "root")}`,
        `--exec-root=${path.join(dir, "exec")}`,
        `--pidfile=${path.join(dir, "dockerd.pid")}`,
        `--host=unix://${socketPath}`,
        "--iptables=false",
        "--bridge=none",
        `--default-address-pool=${pool}`,
        "--log-level=warn",
      ],
      { stdio: ["ignore", log, log], detached: true },
    );
    closeSync(log);
    let exited = "";
    child.once("exit", (code, signal) => (exited = `dockerd exited with ${signal ?? code}`));
    await waitFor(
      "the test run's dockerd to answer",
      async () => {
        if (exited) throw new PlumError(exited, { detail: readFileSync(path.join(dir, "dockerd.log"), "utf8").slice(-2000) });
        return (await answers(socketPath)) || undefined;
      },
      { timeoutMs: 60_000, firstDelayMs: 200, maxDelayMs: 500 },
    );
    forwardRule = await allowPool(base);
  }
  const docker = connectDocker(socketPath);
  const network = `plum-test-${randomBytes(4).toString("hex")}`;
  const created = await docker.createNetwork({ Name: network, Driver: "bridge", CheckDuplicate: true, Labels: { "io.plum.test-run": "true" } });
  const ipam = ((await created.inspect()) as { IPAM: { Config: { Subnet: string; Gateway: string }[] } }).IPAM.Config[0];
  return { socketPath, network, gateway: ipam.Gateway, subnet: ipam.Subnet, child, forwardRule };
}

/** Containers still on the run's network, removed; then the network; then the engine the run started. */
export async function stopTestDockerEngine(engine: TestDockerEngine): Promise<void> {
  const docker: Docker = connectDocker(engine.socketPath);
  const containers = await docker.listContainers({ all: true, filters: JSON.stringify({ network: [engine.network] }) }).catch(() => []);
  await Promise.all(
    containers.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
  await docker
    .getNetwork(engine.network)
    .remove()
    .catch(() => undefined);
  if (engine.forwardRule) await runChild(["iptables", "-D", ...engine.forwardRule], { timeoutMs: 10_000, okCodes: [0, 1] }).catch(() => undefined);
  const child = engine.child;
  if (!child?.pid) return;
  process.kill(child.pid, "SIGTERM");
  for (let i = 0; i < 100 && isAlive(child.pid); i++) await sleep(100);
  if (isAlive(child.pid)) process.kill(child.pid, "SIGKILL");
}

/** The engine and network of this run, as the global setup published them. */
export function testDocker(): { socketPath: string; network: string; gateway: string; subnet: string } {
  const socketPath = process.env[TEST_DOCKER_SOCKET_ENV];
  const network = process.env[TEST_DOCKER_NETWORK_ENV];
  if (!socketPath || !network) throw new PlumError("the test run has no Docker engine: run the tests through mocha's global setup (npm test)");
  return { socketPath, network, gateway: process.env[TEST_DOCKER_GATEWAY_ENV]!, subnet: process.env[TEST_DOCKER_SUBNET_ENV]! };
}
