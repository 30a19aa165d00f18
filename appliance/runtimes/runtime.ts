import { createHash } from "node:crypto";
/**
 * How the agent runs product instances. Production and the upgrade host adapter speak only this interface;
 * `process` (child processes from unpacked releases) and `docker` (containers through dockerode) implement it.
 */
export type Slot = "production" | "staging";

/** A release the runtime can start: its version and how to run its `plumctl`. */
export interface ReleaseRef {
  version: string;
  /** Unpacked release folder (working directory of its instances). */
  dir: string;
  /** Command and leading arguments that run this release's `plumctl`. */
  command: string[];
  /**
   * The release's container image (`plum-product:<version>`, loaded from the bundle's image.tar at import),
   * for the docker runtime. Unset: the release has none (the agent's own tree, or a bundle built without one).
   */
  image?: string;
}

export interface InstanceSpec {
  slot: Slot;
  release: ReleaseRef;
  /** Environment of the instance (database URL and the like). Secrets go here, never in argv. */
  env: Record<string, string>;
}

export interface InstanceInfo {
  id: string; // `${slot}@${version}`
  slot: Slot;
  version: string;
  url: string; // where the instance listens (private, loopback)
  pid?: number;
  startedAt: Date;
}

export interface HealthReport {
  live: boolean;
  ready: boolean;
  detail: string;
  checkedAt: Date;
}

/** What a one-off command of a release (its `plumctl migrate`, `plumctl validate`) did. */
export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export type ExitListener = (instance: InstanceInfo, how: string) => void;

export interface RuntimeDriver {
  readonly kind: string;
  /**
   * At the agent's start: stop instances left running by the previous agent, but adopt the ones it handed over
   * (`adopt`, from its handover record) that are still ours and healthy. Returns what it did.
   */
  recover(adopt?: string[]): Promise<string[]>;
  /**
   * The agent exits for a handover (a restart, an agent upgrade): tell each instance to outlive it and wait for
   * the next agent's claim within `graceMs`. Resolves with the ids that took the handover; the others were stopped.
   * Absent: a runtime whose instances outlive the agent anyway (docker) or never do.
   */
  handOver?(graceMs: number): Promise<string[]>;
  /** Start an instance and resolve once it listens (health is checked separately, with its own deadline). */
  start(spec: InstanceSpec): Promise<InstanceInfo>;
  /** Stop gracefully (in-flight requests finish), killing after the deadline. */
  stop(id: string): Promise<void>;
  health(id: string): Promise<HealthReport>;
  logs(id: string, lines?: number): Promise<string[]>;
  list(): InstanceInfo[];
  /** Called when an instance exits without being asked to. */
  onUnexpectedExit(listener: ExitListener): void;
  /**
   * Run one `plumctl` command of a release to its end (migrations, validation suites), killed at the deadline.
   * Secrets go in `env`, never `args`. Resolves whatever the exit code; rejects only when it cannot run or overran.
   */
  exec(release: ReleaseRef, args: string[], opts: { env: Record<string, string>; timeoutMs: number }): Promise<ExecResult>;
  /**
   * Where instances reach services of the agent's host (its PostgreSQL), for a runtime whose instances are not
   * on the host's loopback: the database listens there too. Called once, before the database starts.
   */
  prepare?(): Promise<{ gateway: string; subnet: string } | undefined>;
  /**
   * Whether the running instance `id` was started with exactly `env`: false for one a restarted agent adopted
   * from before a configuration change (restart it). Absent: instances never outlive the agent.
   */
  sameEnv?(id: string, env: Record<string, string>): boolean;
  /** The agent is stopping: end what the runtime watches (the instances are stopped one by one before). */
  dispose?(): Promise<void>;
}

export function instanceId(slot: Slot, version: string): string {
  return `${slot}@${version}`;
}

/** Probe an instance's /healthz and /readyz over HTTP with a short deadline. */
export async function probeHealth(url: string, timeoutMs = 2000): Promise<HealthReport> {
  const checkedAt = new Date();
  const get = async (path: string) => {
    const res = await fetch(new URL(path, url), { signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    return { ok: res.ok, body };
  };
  try {
    const live = await get("/healthz");
    if (!live.ok) return { live: false, ready: false, detail: `/healthz answered ${live.body.slice(0, 200)}`, checkedAt };
    const ready = await get("/readyz");
    return { live: true, ready: ready.ok, detail: ready.ok ? "ready" : `/readyz: ${ready.body.slice(0, 200)}`, checkedAt };
  } catch (err) {
    return { live: false, ready: false, detail: (err as Error).message, checkedAt };
  }
}

/** What tells one instance environment from another, without keeping the environment (it holds a database password). */
export function envDigest(env: Record<string, string>): string {
  const sorted = Object.keys(env)
    .sort()
    .map((k) => [k, env[k]]);
  return createHash("sha256").update(JSON.stringify(sorted)).digest("hex");
}
