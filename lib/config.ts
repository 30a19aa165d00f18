import { readFileSync, existsSync } from "node:fs";
import { CronExpressionParser } from "cron-parser";
import { parseDocument } from "yaml";
import { z } from "zod";
import { parseDatabaseUrl } from "./db/connection-url.ts";
import { PlumError } from "./errors.ts";
import { trustedProxyProblem } from "./http/trust-proxy.ts";
import { homeLayout, resolveHome } from "./paths.ts";
import { FACILITIES, parseSyslogTarget, type FacilityName } from "./syslog.ts";

// 0 asks the OS for any free port (tests run several appliances side by side).
const port = z.number().int().min(0).max(65535);
const seconds = z.number().int().positive();
const cron = z.string().refine((expr) => {
  try {
    CronExpressionParser.parse(expr, { tz: "UTC" });
    return expr.trim().split(/\s+/).length === 5;
  } catch {
    return false;
  }
}, "is not a 5-field cron expression");

/** Rows one CSV import (participants, sales) takes unless imports.maxRows says otherwise. */
export const DEFAULT_MAX_IMPORT_ROWS = 100_000;

// Proxies whose X-Forwarded-For counts: a hop count, or addresses and CIDR blocks (each entry checked, by index).
const trustedProxies = z
  .union([z.number().int().min(0).max(10), z.array(z.string())])
  .superRefine((value, ctx) => {
    if (!Array.isArray(value)) return;
    value.forEach((entry, i) => {
      const problem = trustedProxyProblem(entry);
      if (problem) ctx.addIssue({ code: "custom", path: [i], message: problem });
    });
  })
  .default([]);

const schema = z.strictObject({
  http: z
    .strictObject({
      host: z.string().min(1).default("0.0.0.0"),
      port: port.default(8080),
      publicUrl: z.url({ protocol: /^https?$/ }).optional(),
      cookieSecure: z.boolean().default(true),
      trustedProxies,
    })
    .prefault({}),
  console: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: port.default(8800),
      cookieSecure: z.boolean().default(true),
      trustedProxies,
      sessionHours: z
        .number()
        .positive()
        .max(24 * 30)
        .default(12),
    })
    .prefault({}),
  database: z
    .strictObject({
      url: z
        .string()
        .superRefine((url, ctx) => {
          try {
            parseDatabaseUrl(url, "the URL");
          } catch (err) {
            ctx.addIssue({ code: "custom", message: (err as Error).message });
          }
        })
        .optional(),
      productDatabase: z
        .string()
        .regex(/^[a-z_][a-z0-9_]{0,62}$/)
        .default("plum"),
      opsDatabase: z
        .string()
        .regex(/^[a-z_][a-z0-9_]{0,62}$/)
        .default("plum_ops"),
      embedded: z.strictObject({ port: port.default(5433) }).prefault({}),
      /** The roles the agent creates (cluster-wide names): the product's DML-only login, and the owner its migrations run as. */
      roles: z
        .strictObject({
          app: z
            .string()
            .regex(/^[a-z_][a-z0-9_]{0,62}$/)
            .default("plum_app"),
          migrate: z
            .string()
            .regex(/^[a-z_][a-z0-9_]{0,62}$/)
            .default("plum_migrate"),
        })
        .refine((r) => r.app !== r.migrate, "the two roles must have different names")
        .prefault({}),
    })
    .prefault({}),
  instances: z
    .strictObject({
      healthTimeoutSeconds: seconds.default(60),
      stopTimeoutSeconds: seconds.default(20),
      /** When the agent runs as root, product instances run as this system user (created if missing). */
      user: z
        .string()
        .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
        .default("plum-app"),
      /**
       * As root, a release's own commands (its migrations, its validation suites) run as this second system user:
       * their environment holds the migrations role's password, which a process of the instances' user could
       * read from /proc/<pid>/environ.
       */
      commandUser: z
        .string()
        .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
        .default("plum-release"),
    })
    .prefault({}),
  runtime: z
    .strictObject({
      /** How product instances run: child processes of the agent, or containers on a Docker engine. */
      kind: z.enum(["process", "docker"]).default("process"),
      docker: z
        .strictObject({
          /** The engine's Unix socket; default DOCKER_HOST (unix://…) or /var/run/docker.sock. */
          socket: z.string().min(1).optional(),
          /** The private bridge network product containers join (created if missing). */
          network: z
            .string()
            .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/)
            .default("plum-instances"),
          /** Repository of the releases' images (loaded from their bundles' image.tar). */
          imageRepository: z
            .string()
            .regex(/^[a-z0-9][a-z0-9._/-]{0,127}$/)
            .default("plum-product"),
          /** Memory limit of each product container, in MiB. */
          memoryMb: z.number().int().min(64).max(1_048_576).default(512),
          /** CPUs each product container may use (fractions allowed). */
          cpus: z.number().min(0.1).max(256).default(1),
          /**
           * The image of the agent's own release when the agent itself runs in a container (docker-compose.onprem.yml):
           * the agent image, which runs `plumctl serve` as well. Unset on a host: the agent's own folder is mounted
           * read-only into a runtime image made from its node binary.
           */
          selfImage: z.string().min(1).optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  security: z
    .strictObject({
      loginMaxFailures: z.number().int().min(1).max(100).default(5),
      loginWindowSeconds: seconds.default(60),
      lockoutSeconds: seconds.default(300),
      loginRateLimitPerMinute: z.number().int().min(1).default(30),
    })
    .prefault({}),
  imports: z.strictObject({ maxRows: z.number().int().min(1).max(10_000_000).default(DEFAULT_MAX_IMPORT_ROWS) }).prefault({}),
  backup: z
    .strictObject({
      primary: z.string().min(1).optional(),
      secondary: z.string().min(1).optional(),
      appendOnly: z.boolean().default(false),
      scheduler: z.boolean().default(true),
      schedule: cron.default("0 */6 * * *"),
      checkSchedule: cron.default("30 3 * * *"),
      drillSchedule: cron.default("0 4 * * 0"),
      retention: z
        .strictObject({
          keepHourly: z.number().int().min(0).max(10_000).default(24),
          keepDaily: z.number().int().min(0).max(10_000).default(7),
          keepWeekly: z.number().int().min(0).max(10_000).default(5),
          keepMonthly: z.number().int().min(0).max(10_000).default(12),
        })
        .prefault({}),
      rpoHours: z
        .number()
        .positive()
        .max(24 * 31)
        .default(6),
      rtoMinutes: z
        .number()
        .positive()
        .max(24 * 60)
        .default(60),
      offsiteMaxAgeHours: z.number().positive().default(24),
      drillMaxAgeDays: z.number().positive().default(8),
    })
    .prefault({}),
  releases: z
    .strictObject({
      /** The vendor's ed25519 public key (PEM, or the 32-byte key in base64): only bundles it signed are imported. */
      vendorPublicKey: z.string().min(1).optional(),
      keep: z.number().int().min(1).max(20).default(3),
    })
    .prefault({}),
  upgrades: z
    .strictObject({
      /** What `plumctl upgrade start` may do after validation: a stricter setting refuses a looser request. */
      promotion: z.enum(["now", "window", "approval"]).default("approval"),
      window: z
        .strictObject({
          cron: cron.default("0 2 * * *"),
          minutes: z
            .number()
            .int()
            .min(5)
            .max(24 * 60)
            .default(120),
        })
        .prefault({}),
      soakSeconds: z
        .number()
        .int()
        .min(0)
        .max(24 * 3600)
        .default(300),
      maxErrorRatio: z.number().min(0).max(1).default(0.02),
      maxP99Ms: z.number().int().positive().default(2000),
      minSoakRequests: z.number().int().min(1).default(20),
      unhealthyChecks: z.number().int().min(1).max(100).default(3),
      autoRestore: z.boolean().default(false),
    })
    .prefault({}),
  audit: z
    .strictObject({
      /** Signed checkpoints of the hash chains in PLUM_HOME/anchors (lib/chain-anchors.ts). */
      anchors: z
        .strictObject({
          everyRows: z.number().int().min(1).max(1_000_000).default(100),
          everySeconds: seconds.max(86_400).default(300),
        })
        .prefault({}),
      /** Forward each audit event and checkpoint to a syslog collector (RFC 5424); off unless a target is set. */
      syslog: z
        .strictObject({
          target: z.string().superRefine((target, ctx) => {
            try {
              parseSyslogTarget(target);
            } catch (err) {
              ctx.addIssue({ code: "custom", message: (err as Error).message });
            }
          }),
          facility: z.enum(Object.keys(FACILITIES) as [FacilityName, ...FacilityName[]]).default("authpriv"),
          queue: z.number().int().min(1).max(100_000).default(1000),
        })
        .optional(),
    })
    .prefault({}),
  log: z.strictObject({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info") }).prefault({}),
});

export type PlumConfig = z.infer<typeof schema> & { home: string; configFile: string };

/** Which keys of each loaded configuration came from an environment variable (key → variable), beside the object. */
const FROM_ENVIRONMENT = new WeakMap<PlumConfig, Record<string, string>>();

/** The keys of a configuration that an environment variable set when it was loaded, e.g. {"http.port": "PLUM_HTTP_PORT"}. */
export function keysFromEnvironment(config: PlumConfig): Record<string, string> {
  return { ...(FROM_ENVIRONMENT.get(config) ?? {}) };
}

/** How to fix each key, shown next to the error. */
const HINTS: Record<string, string> = {
  "http.port": "a TCP port from 1 to 65535 (0: any free port), e.g. 8080 (env PLUM_HTTP_PORT)",
  "http.host": "an address to listen on, e.g. 0.0.0.0 (env PLUM_HTTP_HOST)",
  "http.publicUrl":
    "the address participants and merchants reach the product at, e.g. https://rewards.example.com (used in voucher links and QR codes; env PLUM_PUBLIC_URL)",
  "http.cookieSecure": "true or false; false only when the product is reached over plain HTTP (env PLUM_HTTP_COOKIE_SECURE)",
  "http.trustedProxies":
    "the proxies in front of the edge proxy (a TLS terminator, a load balancer) whose X-Forwarded-For counts: their addresses or CIDR blocks, e.g. [10.0.0.5], or a hop count, e.g. 1; [] (the default): only the edge proxy's own",
  "console.trustedProxies":
    "the reverse proxies in front of the console whose X-Forwarded-For counts: addresses or CIDR blocks, e.g. [\"loopback\"] for a TLS proxy on this host, or a hop count; [] (the default): none, the connection's address is the client's",
  "imports.maxRows": "the most rows one CSV import (participants, sales) takes, from 1 to 10000000, e.g. 100000",
  "console.port": "a TCP port from 1 to 65535 (0: any free port), e.g. 8800 (env PLUM_CONSOLE_PORT)",
  "console.host": "an address to listen on; keep 127.0.0.1 unless a TLS reverse proxy fronts the console (env PLUM_CONSOLE_HOST)",
  "console.cookieSecure": "true or false; false only when the console is reached over plain HTTP on a trusted network",
  "console.sessionHours": "hours a console session lasts, e.g. 12 (at most 720)",
  "database.url":
    "postgres://USER:PASSWORD@HOST:5432/postgres for the client's own PostgreSQL 15 or newer; leave unset for the embedded one (env PLUM_DATABASE_URL)",
  "database.productDatabase": "a lower-case PostgreSQL name, e.g. plum",
  "database.opsDatabase": "a lower-case PostgreSQL name, e.g. plum_ops",
  "database.embedded.port": "a free TCP port for the embedded PostgreSQL, e.g. 5433 (env PLUM_PG_PORT)",
  "database.roles.app": "a lower-case PostgreSQL role name for the product's DML-only login, e.g. plum_app (env PLUM_DATABASE_APP_ROLE)",
  "database.roles.migrate": "a lower-case PostgreSQL role name owning the product's schema, e.g. plum_migrate (env PLUM_DATABASE_MIGRATE_ROLE)",
  "instances.user": "a system user name for product instances when the agent runs as root, e.g. plum-app (env PLUM_INSTANCE_USER)",
  "instances.commandUser":
    "a system user name, not the instances' one, for a release's migrations and validation suites when the agent runs as root, e.g. plum-release (env PLUM_INSTANCE_COMMAND_USER)",
  "runtime.kind": "process (instances as child processes of the agent) or docker (instances as containers on the host's Docker engine) (env PLUM_RUNTIME)",
  "runtime.docker.socket": "the Docker engine's Unix socket, e.g. /var/run/docker.sock (env PLUM_DOCKER_SOCKET)",
  "runtime.docker.network": "a Docker network name for product containers, e.g. plum-instances (env PLUM_DOCKER_NETWORK)",
  "runtime.docker.imageRepository": "a lower-case image repository for releases' images, e.g. plum-product",
  "runtime.docker.memoryMb": "the memory limit of each product container in MiB, at least 64, e.g. 512",
  "runtime.docker.cpus": "the CPUs each product container may use, from 0.1, e.g. 1",
  "runtime.docker.selfImage": "the image of the agent's own release when the agent runs in a container, e.g. plum-appliance:0.1.0 (env PLUM_DOCKER_SELF_IMAGE)",
  "instances.healthTimeoutSeconds": "seconds to wait for a product instance to become healthy, e.g. 60",
  "instances.stopTimeoutSeconds": "seconds to wait for a product instance to stop before it is killed, e.g. 20",
  "security.loginMaxFailures": "failed sign-ins allowed per window before a temporary lockout, e.g. 5",
  "security.loginWindowSeconds": "the window for counting failed sign-ins, e.g. 60",
  "security.lockoutSeconds": "how long a locked account waits, e.g. 300",
  "security.loginRateLimitPerMinute": "sign-in attempts allowed per minute from one address, whatever the account, e.g. 30",
  "releases.vendorPublicKey":
    "the vendor's ed25519 public key as PEM (-----BEGIN PUBLIC KEY-----…) or the 32-byte key in base64, from the vendor's release notes (env PLUM_VENDOR_PUBLIC_KEY)",
  "releases.keep": "how many imported releases to keep for manual rollback, from 1 to 20, e.g. 3",
  "upgrades.promotion":
    "one of now (promote right after validation), window (only in the maintenance window), approval (only after an admin approves); `plumctl upgrade start` may ask for stricter, never looser",
  "upgrades.window.cron": 'a cron expression (5 fields, UTC) for when the maintenance window opens, e.g. "0 2 * * *"',
  "upgrades.window.minutes": "how long the maintenance window stays open, in minutes, e.g. 120",
  "upgrades.soakSeconds": "seconds a promoted release is watched before the old one is stopped, e.g. 300 (0: no soak)",
  "upgrades.maxErrorRatio": "the share of 5xx answers during the soak that rolls back, from 0 to 1, e.g. 0.02",
  "upgrades.maxP99Ms": "the p99 latency in milliseconds during the soak that rolls back, e.g. 2000",
  "upgrades.minSoakRequests": "requests seen before the 5xx ratio and p99 are judged, e.g. 20",
  "upgrades.unhealthyChecks": "failed health checks in a row (1 a second) during the soak that roll back, e.g. 3",
  "upgrades.autoRestore": "true or false: true lets an automatic rollback restore the pre-upgrade snapshot without an admin's confirmation",
  "audit.anchors.everyRows": "rows appended to a hash chain between two signed checkpoints, e.g. 100",
  "audit.anchors.everySeconds": "seconds between checkpoints of a chain that moved, e.g. 300 (at most 86400)",
  "audit.syslog.target":
    "the collector: udp://HOST:PORT, tcp://HOST:PORT (octet-counted frames, RFC 6587) or unix:///PATH of a stream socket, e.g. udp://127.0.0.1:514 (env PLUM_AUDIT_SYSLOG)",
  "audit.syslog.facility": `one of ${Object.keys(FACILITIES).join(", ")} (default authpriv)`,
  "audit.syslog.queue": "messages kept while the collector is unreachable before the oldest are dropped, e.g. 1000",
  "log.level": "one of fatal, error, warn, info, debug, trace (env PLUM_LOG_LEVEL)",
  "backup.primary": "the primary restic repository: a path or any restic repository URL (default PLUM_HOME/backups/primary; env PLUM_BACKUP_PRIMARY)",
  "backup.secondary": "the second-site restic repository, e.g. /mnt/site-b/plum or sftp:backup@site-b:/srv/plum (env PLUM_BACKUP_SECONDARY)",
  "backup.appendOnly":
    "true or false: true serves each folder repository (primary, and a folder secondary) through the agent's append-only rclone server; backups, copies and checks go there, forget and prune only through the folder (env PLUM_BACKUP_APPEND_ONLY)",
  "backup.scheduler": "true or false: false stops the agent from running scheduled backups, checks and drills (env PLUM_BACKUP_SCHEDULER)",
  "backup.schedule": 'a cron expression (5 fields) for backup sets, e.g. "0 */6 * * *" (every 6 hours)',
  "backup.checkSchedule": 'a cron expression for the repository integrity check, e.g. "30 3 * * *" (daily)',
  "backup.drillSchedule": 'a cron expression for restore drills, e.g. "0 4 * * 0" (weekly)',
  "backup.retention.keepHourly": "how many hourly sets to keep: a whole number, 0 or more (never negative)",
  "backup.retention.keepDaily": "how many daily sets to keep: a whole number, 0 or more (never negative)",
  "backup.retention.keepWeekly": "how many weekly sets to keep: a whole number, 0 or more (never negative)",
  "backup.retention.keepMonthly": "how many monthly sets to keep: a whole number, 0 or more (never negative)",
  "backup.rpoHours": "the recovery point objective in hours: the newest good set must be younger",
  "backup.rtoMinutes": "the recovery time objective in minutes: restore drills must finish within it",
  "backup.offsiteMaxAgeHours": "hours within which every set must be copied to the secondary repository, e.g. 24",
  "backup.drillMaxAgeDays": "days within which a restore drill must have passed, e.g. 8",
};

/** Environment variables that override keys of plum.yaml. */
const ENV: Array<{ name: string; path: string[]; type: "int" | "string" | "bool" }> = [
  { name: "PLUM_HTTP_HOST", path: ["http", "host"], type: "string" },
  { name: "PLUM_HTTP_PORT", path: ["http", "port"], type: "int" },
  { name: "PLUM_PUBLIC_URL", path: ["http", "publicUrl"], type: "string" },
  { name: "PLUM_HTTP_COOKIE_SECURE", path: ["http", "cookieSecure"], type: "bool" },
  { name: "PLUM_CONSOLE_HOST", path: ["console", "host"], type: "string" },
  { name: "PLUM_CONSOLE_PORT", path: ["console", "port"], type: "int" },
  { name: "PLUM_CONSOLE_COOKIE_SECURE", path: ["console", "cookieSecure"], type: "bool" },
  { name: "PLUM_DATABASE_URL", path: ["database", "url"], type: "string" },
  { name: "PLUM_PRODUCT_DATABASE", path: ["database", "productDatabase"], type: "string" },
  { name: "PLUM_OPS_DATABASE", path: ["database", "opsDatabase"], type: "string" },
  { name: "PLUM_PG_PORT", path: ["database", "embedded", "port"], type: "int" },
  { name: "PLUM_DATABASE_APP_ROLE", path: ["database", "roles", "app"], type: "string" },
  { name: "PLUM_DATABASE_MIGRATE_ROLE", path: ["database", "roles", "migrate"], type: "string" },
  { name: "PLUM_INSTANCE_USER", path: ["instances", "user"], type: "string" },
  { name: "PLUM_INSTANCE_COMMAND_USER", path: ["instances", "commandUser"], type: "string" },
  { name: "PLUM_RUNTIME", path: ["runtime", "kind"], type: "string" },
  { name: "PLUM_DOCKER_SOCKET", path: ["runtime", "docker", "socket"], type: "string" },
  { name: "PLUM_DOCKER_NETWORK", path: ["runtime", "docker", "network"], type: "string" },
  { name: "PLUM_DOCKER_SELF_IMAGE", path: ["runtime", "docker", "selfImage"], type: "string" },
  { name: "PLUM_HEALTH_TIMEOUT_SECONDS", path: ["instances", "healthTimeoutSeconds"], type: "int" },
  { name: "PLUM_VENDOR_PUBLIC_KEY", path: ["releases", "vendorPublicKey"], type: "string" },
  { name: "PLUM_UPGRADE_PROMOTION", path: ["upgrades", "promotion"], type: "string" },
  { name: "PLUM_UPGRADE_SOAK_SECONDS", path: ["upgrades", "soakSeconds"], type: "int" },
  { name: "PLUM_AUDIT_SYSLOG", path: ["audit", "syslog", "target"], type: "string" },
  { name: "PLUM_LOG_LEVEL", path: ["log", "level"], type: "string" },
  { name: "PLUM_BACKUP_PRIMARY", path: ["backup", "primary"], type: "string" },
  { name: "PLUM_BACKUP_SECONDARY", path: ["backup", "secondary"], type: "string" },
  { name: "PLUM_BACKUP_SCHEDULER", path: ["backup", "scheduler"], type: "bool" },
  { name: "PLUM_BACKUP_APPEND_ONLY", path: ["backup", "appendOnly"], type: "bool" },
];

export class ConfigError extends PlumError {
  readonly problems: string[];
  constructor(file: string, problems: string[]) {
    super(`invalid configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}) in ${file}:\n` + problems.map((p) => `  - ${p}`).join("\n"), {
      hint: "fix the keys above in plum.yaml (or the environment variables named) and start again",
    });
    this.problems = problems;
  }
}

function envValue(raw: string, type: "int" | "string" | "bool"): unknown {
  if (type === "int") return /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : raw;
  if (type === "bool") return raw === "true" || raw === "1" ? true : raw === "false" || raw === "0" ? false : raw;
  return raw;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

/** Load plum.yaml from PLUM_HOME, overlay the environment, validate. Throws ConfigError listing every bad key. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): PlumConfig {
  const home = resolveHome(env);
  const configFile = homeLayout(home, env).configFile;
  let raw: Record<string, unknown> = {};
  if (existsSync(configFile)) {
    const doc = parseDocument(readFileSync(configFile, "utf8"));
    if (doc.errors.length > 0) {
      throw new ConfigError(
        configFile,
        doc.errors.map((e) => `YAML syntax: ${e.message.split("\n")[0]}`),
      );
    }
    let parsed: unknown;
    try {
      // yaml stops expanding aliases past maxAliasCount (a "billion laughs" file would otherwise fill the memory).
      parsed = doc.toJS({ maxAliasCount: 100 }) ?? {};
    } catch (err) {
      throw new ConfigError(configFile, [
        `YAML: ${(err as Error).message.split("\n")[0]}: the file expands its aliases (*name) too often; write the values out instead of repeating aliases of aliases`,
      ]);
    }
    if (typeof parsed !== "object" || Array.isArray(parsed))
      throw new ConfigError(configFile, ["the file must hold a mapping of keys (http:, console:, database:, …)"]);
    raw = parsed as Record<string, unknown>;
  }
  const fromEnv = new Map<string, string>();
  for (const e of ENV) {
    const value = env[e.name];
    if (value === undefined || value === "") continue;
    setPath(raw, e.path, envValue(value, e.type));
    fromEnv.set(e.path.join("."), e.name);
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
      return keys
        .map((unknownKey) => {
          const path = [...issue.path.map(String), ...(unknownKey ? [unknownKey] : [])].join(".") || "(top level)";
          if (unknownKey) return `${path}: unknown key; remove it or check its spelling`;
          const source = fromEnv.get(path) ? ` (from ${fromEnv.get(path)})` : "";
          const hinted = HINTS[path] ?? HINTS[path.replace(/\.\d+$/, "")]; // an entry of a list: the list's hint
          const hint = hinted ? `: must be ${hinted}` : "";
          return `${path}${source}: ${issue.message}${hint}`;
        })
        .join("\n  - ");
    });
    throw new ConfigError(configFile, problems);
  }
  const config: PlumConfig = { ...result.data, home, configFile };
  FROM_ENVIRONMENT.set(config, Object.fromEntries(fromEnv));
  return config;
}

/** The plum.yaml written on first start: every key, commented, at its default. */
export const DEFAULT_CONFIG_YAML = `# plum-appliance configuration. Every key is optional; environment variables override them.
# Reference: README.md, "Configuration".
http:            # the edge proxy: the product's public port
  host: 0.0.0.0
  port: 8080
  trustedProxies: []   # proxies in front of this port whose X-Forwarded-For counts (addresses, CIDRs or a hop count)
  # publicUrl: https://rewards.example.com   # how participants reach the product (voucher links, QR codes)
  cookieSecure: true
console:         # the ops console and control API
  host: 127.0.0.1
  port: 8800
  cookieSecure: true
  trustedProxies: []   # reverse proxies in front of the console whose X-Forwarded-For counts; none by default
  sessionHours: 12
database:
  # url: postgres://plum:PASSWORD@db.example.internal:5432/postgres   # the client's own PostgreSQL (15+)
  productDatabase: plum
  opsDatabase: plum_ops
  embedded:
    port: 5433
  roles:          # created by the agent: the product logs in as app (DML only), its migrations as migrate
    app: plum_app
    migrate: plum_migrate
instances:
  healthTimeoutSeconds: 60
  stopTimeoutSeconds: 20
  user: plum-app  # as root, instances run as this system user (created if missing)
  commandUser: plum-release  # as root, a release's migrations and validation suites run as this one
runtime:
  kind: process   # or docker: instances as hardened containers on this host's Docker engine
  docker:
    # socket: /var/run/docker.sock
    network: plum-instances
    imageRepository: plum-product
    memoryMb: 512
    cpus: 1
security:
  loginMaxFailures: 5
  loginWindowSeconds: 60
  lockoutSeconds: 300
  loginRateLimitPerMinute: 30
imports:
  maxRows: 100000      # the most rows one CSV import (participants, sales) takes
backup:
  # primary: /var/lib/plum/backups            # default: PLUM_HOME/backups/primary
  # secondary: /mnt/site-b/plum               # the second site: any restic repository URL
  # appendOnly: true                          # serve folder repositories append-only (rclone); forget/prune only in the retention job
  schedule: "0 */6 * * *"                     # backup sets, cron (every 6 hours)
  checkSchedule: "30 3 * * *"                 # integrity check with a rotating data subset (daily)
  drillSchedule: "0 4 * * 0"                  # restore drill (weekly)
  retention:
    keepHourly: 24
    keepDaily: 7
    keepWeekly: 5
    keepMonthly: 12
  rpoHours: 6
  rtoMinutes: 60
  offsiteMaxAgeHours: 24
  drillMaxAgeDays: 8
releases:
  # vendorPublicKey: |            # the vendor's ed25519 public key (PEM); only bundles it signed are imported
  #   -----BEGIN PUBLIC KEY-----
  #   ...
  #   -----END PUBLIC KEY-----
  keep: 3                         # imported releases kept for manual rollback
upgrades:
  promotion: approval             # now | window | approval: the least an upgrade must wait for after validation
  window:
    cron: "0 2 * * *"             # maintenance window opens (UTC)
    minutes: 120
  soakSeconds: 300                # a promoted release is watched this long; a breach rolls back
  maxErrorRatio: 0.02             # share of 5xx answers
  maxP99Ms: 2000
  minSoakRequests: 20
  unhealthyChecks: 3              # failed health checks in a row
  autoRestore: false              # a rollback that needs the pre-upgrade snapshot waits for an admin
audit:
  anchors:                        # signed checkpoints of the hash chains, in PLUM_HOME/anchors/chain-anchors.jsonl
    everyRows: 100
    everySeconds: 300
  # syslog:                       # forward each audit event and checkpoint (RFC 5424); off by default
  #   target: udp://127.0.0.1:514   # or tcp://collector.example.internal:601, unix:///run/syslog-ng/stream.sock
  #   facility: authpriv
  #   queue: 1000
log:
  level: info
`;
