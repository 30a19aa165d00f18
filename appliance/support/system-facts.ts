import { existsSync, readFileSync, statfsSync } from "node:fs";
import os from "node:os";
import { runChild } from "../../lib/child-process.ts";
import { connectDocker, dockerSocketPath, engineFacts } from "../../lib/docker/engine.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { NotCollected, type Collector } from "./collector.ts";

/** The first line a tool prints about its version, or why there is none. */
async function toolVersion(argv: string[]): Promise<string> {
  try {
    return (await runChild(argv, { timeoutMs: 10_000 })).stdout.trim().split("\n")[0];
  } catch (err) {
    return `unavailable: ${(err as Error).message.split("\n")[0]}`;
  }
}

function osRelease(): Record<string, string> | string {
  const file = ["/etc/os-release", "/usr/lib/os-release"].find((f) => existsSync(f));
  if (!file) return "unavailable: no /etc/os-release";
  const fields: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) fields[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
  }
  return fields;
}

export const versionsCollector: Collector = {
  name: "versions",
  async collect(ctx) {
    let production: string | undefined;
    if (ctx.ops) production = (await ctx.ops.query<{ version: string }>("select version from production_release where id = 1")).rows[0]?.version;
    const [restic, pgDump, pgRestore] = await Promise.all([
      toolVersion(["restic", "version"]),
      toolVersion(["pg_dump", "--version"]),
      toolVersion(["pg_restore", "--version"]),
    ]);
    return [
      {
        member: "versions.json",
        content: {
          appliance: APP_VERSION,
          production: production ?? (ctx.ops ? APP_VERSION : `unknown: ${ctx.unreachable.ops}`),
          node: process.version,
          restic,
          pgDump,
          pgRestore,
          os: osRelease(),
          kernel: { release: os.release(), version: os.version(), arch: os.arch() },
          hostname: os.hostname(),
        },
      },
    ];
  },
};

function meminfo(): Record<string, number> | undefined {
  if (!existsSync("/proc/meminfo")) return undefined;
  const kib: Record<string, number> = {};
  for (const line of readFileSync("/proc/meminfo", "utf8").split("\n")) {
    const m = /^(MemTotal|MemAvailable|MemFree|SwapTotal|SwapFree):\s+(\d+) kB/.exec(line);
    if (m) kib[m[1]] = Number(m[2]) * 1024;
  }
  return kib;
}

export const hostCollector: Collector = {
  name: "host",
  async collect(ctx) {
    const st = statfsSync(ctx.config.home);
    return [
      {
        member: "host.json",
        content: {
          disk: { path: ctx.config.home, totalBytes: st.blocks * st.bsize, freeBytes: st.bavail * st.bsize, freeInodes: st.ffree },
          memory: { totalBytes: os.totalmem(), freeBytes: os.freemem(), ...(meminfo() ? { meminfoBytes: meminfo() } : {}) },
          cpus: os.cpus().length,
          loadAverage: os.loadavg(),
          uptimeSeconds: Math.round(os.uptime()),
          runtime: ctx.config.runtime.kind,
        },
      },
    ];
  },
};

export const engineCollector: Collector = {
  name: "docker engine",
  async collect(ctx) {
    if (ctx.config.runtime.kind !== "docker") throw new NotCollected("runtime.kind is process: no Docker engine is used");
    const socket = dockerSocketPath(ctx.config.runtime.docker.socket);
    return [{ member: "docker-engine.json", content: await engineFacts(connectDocker(socket), socket) }];
  },
};
