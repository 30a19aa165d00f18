import { createInterface } from "node:readline";
import Docker from "dockerode";
import { PlumError } from "../errors.ts";
import { withDeadline } from "../wait.ts";

/**
 * The Docker engine API version every call speaks. Debian 12's docker.io (20.10) offers 1.41 and refuses
 * newer ones; a newer engine still answers 1.41.
 */
export const DOCKER_API_VERSION = "v1.41";
export const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";

/**
 * Where the engine listens: an explicit socket, else DOCKER_HOST (`unix://…` only: the appliance talks to a
 * local engine), else the default socket.
 */
export function dockerSocketPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  const host = env.DOCKER_HOST;
  if (!host) return DEFAULT_DOCKER_SOCKET;
  if (!host.startsWith("unix://")) {
    throw new PlumError(`DOCKER_HOST=${host} is not a local engine socket`, {
      hint: "the appliance talks to the engine on its own host: set DOCKER_HOST=unix:///var/run/docker.sock or runtime.docker.socket",
    });
  }
  return host.slice("unix://".length);
}

/** A dockerode client on the engine's Unix socket, pinned to DOCKER_API_VERSION. */
export function connectDocker(socketPath?: string): Docker {
  return new Docker({ socketPath: dockerSocketPath(socketPath), version: DOCKER_API_VERSION });
}

export interface EngineFacts {
  socketPath: string;
  version: string;
  apiVersion: string;
  storageDriver: string;
  dataRoot: string;
  cgroupVersion: string;
}

/** Ask the engine who it is, with a deadline; an engine that does not answer is an error with the fix. */
export async function engineFacts(docker: Docker, socketPath: string, timeoutMs = 5000): Promise<EngineFacts> {
  try {
    const [version, info] = await withDeadline(
      `the Docker engine at ${socketPath} to answer`,
      timeoutMs,
      Promise.all([docker.version(), docker.info() as Promise<Record<string, unknown>>]),
    );
    return {
      socketPath,
      version: version.Version,
      apiVersion: version.ApiVersion,
      storageDriver: String(info.Driver ?? ""),
      dataRoot: String(info.DockerRootDir ?? ""),
      cgroupVersion: String(info.CgroupVersion ?? ""),
    };
  } catch (err) {
    throw new PlumError(`the Docker engine at ${socketPath} does not answer: ${(err as Error).message}`, {
      hint: "start it (`systemctl start docker`, or `dockerd &` where systemd does not run), or point runtime.docker.socket at its socket",
      cause: err,
    });
  }
}

/** One event of the engine's /events stream (the fields the appliance reads). */
export interface EngineEvent {
  id?: string;
  Action?: string;
  timeNano?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/**
 * Follow the engine's events matching `filters`, one JSON object per line, until `stop()`. `onEnd` is told when
 * the stream ends or breaks, or could not be opened (the caller decides whether to watch again).
 */
export function watchEngineEvents(
  docker: Docker,
  filters: Record<string, string[]>,
  onEvent: (event: EngineEvent) => void,
  onEnd: (err?: Error) => void = () => undefined,
): { stop(): void } {
  let stream: (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
  let stopped = false;
  void (docker.getEvents({ filters: JSON.stringify(filters) } as never) as unknown as Promise<NodeJS.ReadableStream>).then(
    (s) => {
      stream = s;
      if (stopped) return stream.destroy?.();
      createInterface({ input: s, crlfDelay: Infinity }).on("line", (line: string) => {
        if (!line.trim()) return;
        let event: EngineEvent;
        try {
          event = JSON.parse(line) as EngineEvent;
        } catch {
          return; // not a JSON line
        }
        onEvent(event);
      });
      let ended = false;
      const end = (err?: Error) => {
        if (ended || stopped) return;
        ended = true;
        onEnd(err);
      };
      s.once("end", () => end());
      s.once("error", (err: Error) => end(err));
    },
    (err: Error) => {
      if (!stopped) onEnd(err);
    },
  );
  return {
    stop() {
      stopped = true;
      stream?.destroy?.();
    },
  };
}
