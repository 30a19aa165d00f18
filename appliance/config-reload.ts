import { ConfigError, loadConfig, type PlumConfig } from "../lib/config.ts";
import type { Logger } from "../lib/logger.ts";
import type { AuditLog } from "./audit/audit-log.ts";

type Takes = "live" | "restart";

/**
 * What a changed key of plum.yaml takes on a running agent: "live" keys are read where they are used (each
 * import, prune, forget, upgrade decision, evidence export), so changing the live config object applies
 * them; "restart" keys were built into a listener, a connection or a component at start. The longest key
 * that prefixes a changed one decides; a key this table does not name needs a restart.
 */
export const RELOAD_TABLE: Record<string, { takes: Takes; why: string }> = {
  home: { takes: "restart", why: "the appliance's folder: every file the agent holds is in it" },
  configFile: { takes: "restart", why: "where plum.yaml is read from" },
  "http.host": { takes: "restart", why: "the edge proxy listens on it" },
  "http.port": { takes: "restart", why: "the edge proxy listens on it" },
  "http.publicUrl": { takes: "restart", why: "a product instance is given it when it starts" },
  "http.cookieSecure": { takes: "restart", why: "a product instance is given it when it starts" },
  "http.trustedProxies": { takes: "restart", why: "a product instance is given it when it starts" },
  "console.trustedProxies": { takes: "restart", why: "the console is built with it at start" },
  "imports.maxRows": { takes: "restart", why: "a product instance is given it when it starts" },
  "console.host": { takes: "restart", why: "the console listens on it" },
  "console.port": { takes: "restart", why: "the console listens on it" },
  "console.cookieSecure": { takes: "restart", why: "the console is built with it at start" },
  "console.sessionHours": { takes: "restart", why: "the console is built with it at start" },
  database: { takes: "restart", why: "the agent's connections, the embedded PostgreSQL and every instance's database URL" },
  instances: { takes: "restart", why: "the runtime driver is built with these timeouts at start" },
  runtime: { takes: "restart", why: "the runtime driver (process or docker) and its engine, network and limits are chosen at start" },
  security: { takes: "restart", why: "the console's sign-in limits and every product instance take it at start" },
  "backup.primary": { takes: "restart", why: "the backup agent names its repositories at start" },
  "backup.secondary": { takes: "restart", why: "the backup agent names its repositories at start" },
  "backup.appendOnly": { takes: "restart", why: "the agent starts its append-only repository servers at start" },
  "backup.scheduler": { takes: "restart", why: "the backup schedule is set up at start" },
  "backup.schedule": { takes: "restart", why: "the backup schedule is set up at start" },
  "backup.checkSchedule": { takes: "restart", why: "the backup schedule is set up at start" },
  "backup.drillSchedule": { takes: "restart", why: "the backup schedule is set up at start" },
  "backup.retention": { takes: "live", why: "read at each forget" },
  "backup.rpoHours": { takes: "live", why: "read at each evidence export and by the console's controls" },
  "backup.rtoMinutes": { takes: "live", why: "read at each evidence export and by the console's controls" },
  "backup.offsiteMaxAgeHours": { takes: "live", why: "read at each evidence export and by the console's controls" },
  "backup.drillMaxAgeDays": { takes: "live", why: "read at each evidence export and by the console's controls" },
  "releases.vendorPublicKey": { takes: "live", why: "read at each import and at each upgrade's verify step" },
  "releases.keep": { takes: "live", why: "read at each prune" },
  upgrades: { takes: "live", why: "read by the upgrade manager at each decision" },
  audit: { takes: "restart", why: "the chains' checkpointer and the syslog forwarder are built at start" },
  log: { takes: "restart", why: "the logger is built at start" },
};

export interface ReloadOutcome {
  /** Changed keys now in effect. */
  applied: string[];
  /** Changed keys that take effect at the next start (still as before meanwhile). */
  restartNeeded: string[];
}

/** The table's entry for a key (the longest prefix); unnamed keys need a restart. */
export function reloadRuleFor(key: string): { takes: Takes; why: string } {
  const match = Object.keys(RELOAD_TABLE)
    .filter((k) => key === k || key.startsWith(`${k}.`))
    .sort((a, b) => b.length - a.length)[0];
  return match ? RELOAD_TABLE[match] : { takes: "restart", why: "not known to be safe to change while the agent runs" };
}

function leaves(node: unknown, prefix: string, into: Map<string, unknown>): Map<string, unknown> {
  if (node !== null && typeof node === "object" && !Array.isArray(node)) {
    for (const [k, v] of Object.entries(node)) leaves(v, prefix ? `${prefix}.${k}` : k, into);
  } else into.set(prefix, node);
  return into;
}

/** Set one leaf in place, so that whoever holds a section of the live config (a context, a host) sees it. */
function setLeaf(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== "object" || node[part] === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  if (value === undefined) delete node[parts[parts.length - 1]];
  else node[parts[parts.length - 1]] = value;
}

/** Diff a validated config against the live one and apply, in place, the changed keys the table calls live. */
export function applyConfig(live: PlumConfig, next: PlumConfig): ReloadOutcome {
  const before = leaves(live, "", new Map());
  const after = leaves(next, "", new Map());
  const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => JSON.stringify(before.get(k)) !== JSON.stringify(after.get(k))).sort();
  const outcome: ReloadOutcome = { applied: [], restartNeeded: [] };
  for (const key of changed) {
    if (reloadRuleFor(key).takes === "live") {
      setLeaf(live as unknown as Record<string, unknown>, key, after.get(key));
      outcome.applied.push(key);
    } else outcome.restartNeeded.push(key);
  }
  return outcome;
}

/**
 * Read plum.yaml (and the agent's environment) again and apply what is safe to apply live. An invalid file
 * changes nothing: the ConfigError listing every bad key is thrown. Audited either way (key names only:
 * a value may hold a password).
 */
export async function reloadAgentConfig(agent: { config: PlumConfig; audit: AuditLog; log: Logger }, actor: string): Promise<ReloadOutcome> {
  let next: PlumConfig;
  try {
    next = loadConfig({ ...process.env, PLUM_HOME: agent.config.home });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    await agent.audit.append({ actor, action: "config.reload", outcome: "failure", detail: { problems: err.problems } });
    agent.log.warn({ problems: err.problems }, "plum.yaml is invalid: the configuration in effect is unchanged");
    throw err;
  }
  const outcome = applyConfig(agent.config, next);
  await agent.audit.append({ actor, action: "config.reload", detail: { ...outcome } });
  agent.log.info(outcome, "configuration reloaded");
  return outcome;
}
