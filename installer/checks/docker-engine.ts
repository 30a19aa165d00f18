import { statfsSync, statSync } from "node:fs";
import path from "node:path";
import { connectDocker, dockerSocketPath, engineFacts, type EngineFacts } from "../../lib/docker/engine.ts";
import { PlumError, TimeoutError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

/** Debian 12's docker.io: the oldest engine the docker runtime is built and tested against. */
export const MIN_ENGINE_VERSION: readonly [number, number] = [20, 10];
export const MIN_API_VERSION: readonly [number, number] = [1, 41];
export const EXPECTED_STORAGE_DRIVER = "overlay2";
/** Images of the kept releases (about 100 MB each), their one-off command containers and some room to load the next. */
export const NEEDED_DATA_ROOT_GIB = 2;

/** "20.10.24+dfsg1" → [20, 10]; undefined when it does not start with two numbers. */
function majorMinor(version: string): [number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

const older = (a: readonly [number, number], b: readonly [number, number]) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

/** Free bytes in the engine's data root as seen from here, or why it cannot be seen. */
export function dataRootSpace(dataRoot: string): { freeBytes: number } | { unseen: string } {
  if (!dataRoot || !path.isAbsolute(dataRoot)) return { unseen: "the engine did not say where its data root is" };
  // The same path may exist here and be something else (the agent in a container sees its own filesystem):
  // count it as the engine's only when it holds an engine's layout.
  for (const sub of ["containers", "image"]) {
    try {
      if (!statSync(path.join(dataRoot, sub)).isDirectory()) return { unseen: `${dataRoot} here is not the engine's data root` };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // The data root exists but is the engine's own (0710 root): its free space is still readable.
      if (code === "EACCES") break;
      return { unseen: `${dataRoot} is not visible from here (is the agent in a container?)` };
    }
  }
  const st = statfsSync(dataRoot);
  return { freeBytes: st.bavail * st.bsize };
}

/** What was wrong when the engine did not answer, with the fix for that cause. */
function unreachable(socketPath: string, err: unknown): PlumError {
  const cause = (err as { cause?: unknown }).cause ?? err;
  const code = (cause as NodeJS.ErrnoException).code;
  const text = String((cause as Error).message ?? cause);
  if (code === "ENOENT")
    return new PlumError(`no Docker engine socket at ${socketPath}`, {
      hint: "install and start the engine (Debian: apt-get install -y docker.io; systemctl start docker), or set runtime.docker.socket (PLUM_DOCKER_SOCKET) to the socket it listens on",
      cause: err,
    });
  if (code === "EACCES" || code === "EPERM")
    return new PlumError(`not allowed to open the Docker engine socket ${socketPath}`, {
      hint: "add the agent's user to the socket's group (usually `docker`: usermod -aG docker <user>, then log in again), or run the agent as root",
      cause: err,
    });
  if (code === "ECONNREFUSED" || code === "ENOTSOCK")
    return new PlumError(`nothing listens on the Docker engine socket ${socketPath}`, {
      hint: "start the engine (systemctl start docker, or `dockerd &` where systemd does not run), or point runtime.docker.socket at the socket it listens on",
      cause: err,
    });
  if (/too new|maximum supported api version/i.test(text))
    return new PlumError(`the Docker engine at ${socketPath} is older than API ${MIN_API_VERSION.join(".")}: ${text}`, {
      hint: `upgrade the engine to Docker ${MIN_ENGINE_VERSION.join(".")} or newer (Debian 12: apt-get install -y docker.io)`,
      cause: err,
    });
  if (err instanceof TimeoutError || cause instanceof TimeoutError)
    return new PlumError(`the Docker engine at ${socketPath} accepts connections but does not answer`, {
      hint: "the engine is hung or overloaded: look at its log (journalctl -u docker) and restart it (systemctl restart docker)",
      cause: err,
    });
  if (err instanceof PlumError) return err;
  return new PlumError(`the Docker engine at ${socketPath} does not answer: ${text}`, { cause: err });
}

/**
 * Is the engine at socketPath one the docker runtime can use: it answers, Docker ≥ 20.10 with API ≥ 1.41, on
 * overlay2 (another driver works but is a warning), with enough free space in its data root (when that is
 * visible from here). Returns what it found; throws a PlumError naming every failure, each with its fix.
 */
export async function checkDockerEngine(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<string> {
  let facts: EngineFacts;
  try {
    facts = await engineFacts(connectDocker(socketPath), socketPath, opts.timeoutMs ?? 5000);
  } catch (err) {
    throw unreachable(socketPath, err);
  }
  const problems: { message: string; hint: string }[] = [];
  const notes: string[] = [];
  const engine = majorMinor(facts.version);
  if (!engine || older(engine, MIN_ENGINE_VERSION))
    problems.push({
      message: `Docker ${facts.version || "(no version)"} is older than ${MIN_ENGINE_VERSION.join(".")}`,
      hint: `upgrade the engine to ${MIN_ENGINE_VERSION.join(".")} or newer (Debian 12: apt-get install -y docker.io)`,
    });
  const api = majorMinor(facts.apiVersion);
  if (!api || older(api, MIN_API_VERSION))
    problems.push({
      message: `the engine speaks API ${facts.apiVersion || "(none)"}, ${MIN_API_VERSION.join(".")} needed`,
      hint: `upgrade the engine to Docker ${MIN_ENGINE_VERSION.join(".")} or newer`,
    });
  if (facts.storageDriver !== EXPECTED_STORAGE_DRIVER)
    notes.push(
      `warning: storage driver ${facts.storageDriver || "(none)"}, ${EXPECTED_STORAGE_DRIVER} expected (others work but are slower and less tested; set "storage-driver": "${EXPECTED_STORAGE_DRIVER}" in /etc/docker/daemon.json on a fresh data root)`,
    );
  const space = dataRootSpace(facts.dataRoot);
  if ("unseen" in space) {
    notes.push(`free space in the data root not checked: ${space.unseen}; check it on the Docker host: df -h ${facts.dataRoot || "/var/lib/docker"}`);
  } else {
    const freeGiB = space.freeBytes / 2 ** 30;
    if (freeGiB < NEEDED_DATA_ROOT_GIB)
      problems.push({
        message: `${freeGiB.toFixed(1)} GiB free in the engine's data root ${facts.dataRoot}, ${NEEDED_DATA_ROOT_GIB} GiB needed`,
        hint: "free space there (docker image prune removes images no container uses) or move the engine's data-root to a larger volume",
      });
    else notes.push(`${freeGiB.toFixed(1)} GiB free in ${facts.dataRoot}`);
  }
  if (problems.length > 0)
    throw new PlumError(`Docker engine at ${socketPath}: ${problems.map((p) => p.message).join("; ")}`, {
      hint: [...new Set(problems.map((p) => p.hint))].join("; "),
    });
  return [`Docker ${facts.version} (API ${facts.apiVersion}) at ${socketPath}`, `storage driver ${facts.storageDriver}`, ...notes].join(", ");
}

export const dockerEngine: PreflightCheck = {
  id: "docker-engine",
  title: "the Docker engine (when runtime.kind is docker): answers, 20.10 or newer (API 1.41), overlay2, room in its data root",
  categories: ["doctor"],
  async run({ config }) {
    const { kind, docker } = config.runtime;
    if (kind !== "docker") return `not needed: runtime.kind is ${kind}`;
    return checkDockerEngine(dockerSocketPath(docker.socket));
  },
};
