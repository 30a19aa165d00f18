import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import path from "node:path";
import { effectiveConfigYaml } from "../../lib/effective-config.ts";
import { homeLayout } from "../../lib/paths.ts";
import { NotCollected, type Collector } from "./collector.ts";

export const DEFAULT_LOG_TAIL_KIB = 256;

export const configCollector: Collector = {
  name: "configuration",
  async collect(ctx) {
    const out = [{ member: "config/effective.yaml", content: effectiveConfigYaml(ctx.config, ["Written into a support bundle; secrets masked."]) }];
    if (existsSync(ctx.config.configFile)) out.push({ member: "config/plum.yaml", content: readFileSync(ctx.config.configFile, "utf8") });
    return out;
  },
};

/** The last `bytes` of a file, from the first whole line in them. */
function tail(file: string, bytes: number): { text: string; size: number; truncated: boolean } {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    let text = buf.toString("utf8");
    if (length < size) text = text.slice(text.indexOf("\n") + 1);
    return { text, size, truncated: length < size };
  } finally {
    closeSync(fd);
  }
}

/** The tail of each log in PLUM_HOME/logs (and one folder down: per-instance logs). */
export function logsCollector(tailKib = DEFAULT_LOG_TAIL_KIB): Collector {
  return {
    name: "logs",
    async collect(ctx) {
      const dir = homeLayout(ctx.config.home).logsDir;
      if (!existsSync(dir)) throw new NotCollected(`${dir} does not exist`);
      const files: string[] = [];
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isFile()) files.push(e.name);
        else if (e.isDirectory())
          for (const f of readdirSync(path.join(dir, e.name), { withFileTypes: true })) if (f.isFile()) files.push(path.join(e.name, f.name));
      }
      const index: Array<{ file: string; sizeBytes: number; tailBytes: number; truncated: boolean }> = [];
      const out = files.sort().map((file) => {
        const t = tail(path.join(dir, file), tailKib * 1024);
        index.push({ file, sizeBytes: t.size, tailBytes: Buffer.byteLength(t.text), truncated: t.truncated });
        return { member: `logs/${file.replace(/[^A-Za-z0-9._/-]/g, "_")}`, content: t.text };
      });
      return [...out, { member: "logs/index.json", content: { tailKib, files: index } }];
    },
  };
}

/** Which releases the store holds (folder names only: their contents are the vendor's own). */
export const releasesCollector: Collector = {
  name: "release store",
  async collect(ctx) {
    const dir = homeLayout(ctx.config.home).releasesDir;
    if (!existsSync(dir)) throw new NotCollected(`${dir} does not exist`);
    return [{ member: "releases.json", content: readdirSync(dir).sort() }];
  },
};

/** The agent's /metrics (backups, jobs, proxy), when it runs: a bundle of a stopped agent says so instead. */
export const metricsCollector: Collector = {
  name: "agent metrics",
  async collect(ctx) {
    if (!ctx.agent) throw new NotCollected(ctx.unreachable.agent ?? "the agent is not running");
    const res = await fetch(new URL("/metrics", ctx.agent.consoleUrl), { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`GET /metrics on the console answered ${res.status}`);
    return [{ member: "metrics.txt", content: await res.text() }];
  },
};
