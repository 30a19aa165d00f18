import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { PlumConfig } from "../../lib/config.ts";
import { homeLayout } from "../../lib/paths.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { runningAgent } from "../control/control-client.ts";
import { NotCollected, type Collected, type CollectionContext, type Collector } from "./collector.ts";
import { configCollector, logsCollector, metricsCollector, releasesCollector } from "./home-files.ts";
import { databaseTokens, knownSecrets } from "./known-secrets.ts";
import { auditCollector, backupCatalogueCollector, upgradesCollector } from "./ops-records.ts";
import { Redactor, type TokenSets } from "./redactor.ts";
import { openClient, supportServer } from "./support-sources.ts";
import { engineCollector, hostCollector, versionsCollector } from "./system-facts.ts";
import { tarGz, type ArchiveMember } from "./tar-gz.ts";

/** One preflight check's outcome, as `plumctl doctor` lists it. */
export interface DoctorResult {
  id: string;
  title: string;
  ok: boolean;
  found?: string;
  error?: string;
  hint?: string;
}

/** The `doctor` category of the preflight checks, run when a bundle is made (they live in installer/, above appliance/). */
export type DoctorChecks = () => Promise<DoctorResult[]>;

export interface SupportBundleOptions {
  config: PlumConfig;
  /** The file to write; default plum-support-<hostname>-<UTC time>.tar.gz in `dir`. */
  out?: string;
  /** Where the default file name goes; default the current directory. */
  dir?: string;
  /** What the bundle is for, in the default file name ("upgrade-12-aborted"). */
  label?: string;
  now?: Date;
  env?: NodeJS.ProcessEnv;
  logTailKib?: number;
  /** The `doctor` category of the preflight checks: they live in installer/, above this layer, so the caller runs them. */
  doctor?: DoctorChecks;
  /** `plumctl status --json`'s report, as status.json (plumctl support-bundle passes it; the agent's own bundles do not yet). */
  status?: () => Promise<unknown>;
}

export interface SupportBundle {
  file: string;
  members: string[];
  notCollected: Array<{ collector: string; reason: string }>;
  /** How many secrets were masked in all (their kinds and places are in the bundle's redactions.json). */
  masked: number;
}

const stamp = (at: Date) =>
  at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");

/** plum-support-<host>[-<label>]-<UTC time>.tar.gz: what it is for in the name, where one second may see two. */
export function defaultBundleName(at: Date, host = os.hostname(), label?: string): string {
  const safe = (text: string) => text.replace(/[^A-Za-z0-9.-]/g, "_");
  return `plum-support-${safe(host)}${label ? `-${safe(label)}` : ""}-${stamp(at)}.tar.gz`;
}

function doctorText(results: DoctorResult[]): string {
  return results
    .map((r) => (r.ok ? `ok    ${r.title}${r.found ? ` — ${r.found}` : ""}` : `FAIL  ${r.title}: ${r.error}${r.hint ? `\n      hint: ${r.hint}` : ""}`))
    .join("\n")
    .concat("\n");
}

function providedCollector(name: string, provider: (() => Promise<unknown>) | undefined, missing: string, members: (v: unknown) => Collected[]): Collector {
  return {
    name,
    async collect() {
      if (!provider) throw new NotCollected(missing);
      return members(await provider());
    },
  };
}

/**
 * Collect what a vendor needs to diagnose this appliance into one .tar.gz (mode 0600), with every secret the
 * appliance holds masked before anything is written. Whatever cannot be reached (a stopped agent, a database
 * down) is named in collection.json and the bundle is still made: it is most needed when something is broken.
 */
export async function supportBundleWriter(opts: SupportBundleOptions): Promise<SupportBundle> {
  const { config } = opts;
  const now = opts.now ?? new Date();
  const ctx: CollectionContext = { config, unreachable: {}, now };
  const notCollected: SupportBundle["notCollected"] = [];
  try {
    const server = supportServer(config);
    const [ops, product] = await Promise.all([openClient(server, config.database.opsDatabase), openClient(server, config.database.productDatabase)]);
    ctx.ops = ops.client;
    ctx.product = product.client;
    if (ops.error) ctx.unreachable.ops = ops.error;
    if (product.error) ctx.unreachable.product = product.error;
  } catch (err) {
    ctx.unreachable.ops = ctx.unreachable.product = `the database server cannot be named: ${(err as Error).message}`;
  }
  try {
    ctx.agent = runningAgent(homeLayout(config.home).runDir);
    if (!ctx.agent) ctx.unreachable.agent = "the agent is not running (no live pid in run/agent.json)";
  } catch (err) {
    ctx.unreachable.agent = `run/agent.json cannot be read: ${(err as Error).message}`;
  }
  for (const [source, reason] of Object.entries(ctx.unreachable)) notCollected.push({ collector: `source ${source}`, reason });

  try {
    let tokens: TokenSets = { byValue: new Map(), byHash: new Map() };
    try {
      tokens = await databaseTokens(ctx.ops, ctx.product);
    } catch (err) {
      notCollected.push({ collector: "database tokens (for redaction)", reason: (err as Error).message });
    }
    const redactor = new Redactor(knownSecrets(config, opts.env), tokens);
    const collectors: Collector[] = [
      versionsCollector,
      hostCollector,
      engineCollector,
      configCollector,
      providedCollector("doctor", opts.doctor, "no doctor checks were given to the collector", (v) => [
        { member: "doctor.json", content: v },
        { member: "doctor.txt", content: doctorText(v as DoctorResult[]) },
      ]),
      providedCollector("status", opts.status, "not gathered by this writer (plumctl support-bundle adds it)", (v) => [{ member: "status.json", content: v }]),
      logsCollector(opts.logTailKib),
      upgradesCollector,
      backupCatalogueCollector,
      auditCollector,
      releasesCollector,
      metricsCollector,
    ];
    const members: ArchiveMember[] = [];
    const outcomes: Array<{ collector: string; outcome: "collected" | "skipped" | "failed"; members?: string[]; reason?: string; seconds: number }> = [];
    for (const collector of collectors) {
      const started = Date.now();
      const seconds = () => (Date.now() - started) / 1000;
      try {
        const collected = await collector.collect(ctx);
        for (const c of collected) {
          const text = typeof c.content === "string" ? c.content : JSON.stringify(c.content, null, 2) + "\n";
          members.push({ name: c.member, content: Buffer.from(redactor.redact(c.member, text)) });
        }
        outcomes.push({ collector: collector.name, outcome: "collected", members: collected.map((c) => c.member), seconds: seconds() });
      } catch (err) {
        const skipped = err instanceof NotCollected;
        const reason = (err as Error).message;
        outcomes.push({ collector: collector.name, outcome: skipped ? "skipped" : "failed", reason, seconds: seconds() });
        notCollected.push({ collector: collector.name, reason });
      }
    }
    const collection = { applianceVersion: APP_VERSION, collectedAt: now.toISOString(), home: config.home, sources: ctx.unreachable, collectors: outcomes };
    members.push({ name: "collection.json", content: Buffer.from(redactor.redact("collection.json", JSON.stringify(collection, null, 2) + "\n")) });
    const redactions = redactor.redactions;
    members.push({
      name: "redactions.json",
      content: Buffer.from(JSON.stringify({ note: "what was masked where: the kind of secret and how often, never its value", redactions }, null, 2) + "\n"),
    });

    const file = path.resolve(opts.out ?? path.join(opts.dir ?? process.cwd(), defaultBundleName(now, undefined, opts.label)));
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // "wx": never overwrite a file that is there (a bundle is handed out; another one may be on its way).
    writeFileSync(file, tarGz(members, now), { mode: 0o600, flag: "wx" });
    return { file, members: members.map((m) => m.name), notCollected, masked: redactions.reduce((n, r) => n + r.count, 0) };
  } finally {
    await Promise.all([ctx.ops?.end().catch(() => undefined), ctx.product?.end().catch(() => undefined)]);
  }
}
