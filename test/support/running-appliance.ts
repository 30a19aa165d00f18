import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import pg from "pg";
import { agentLink, callAgent } from "../../appliance/control/control-client.ts";
import { applianceTag, LABEL } from "../../appliance/runtimes/docker-runtime.ts";
import { UpgradeJournal } from "../../appliance/upgrade/upgrade-journal.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { connectDocker } from "../../lib/docker/engine.ts";
import { homeLayout } from "../../lib/paths.ts";
import { demoDataLoader } from "../../product/demo/demo-data.ts";
import { removeHome, startAgentProcess, tempHome, type AgentProcess } from "./agent-process.ts";
import { freshDatabases, type FreshDatabases } from "./databases.ts";
import { testDocker } from "./docker-engine.ts";
import { plumctl } from "./plumctl.ts";

/** An upgrade as the control API answers it (JSON: dates as strings, the report as the journal stores it). */
export interface UpgradeView {
  id: number;
  kind: string;
  status: string;
  step: string;
  fromVersion: string;
  toVersion: string;
  rollbackMode: string | null;
  error: string | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the report is read as the journal stores it
  report: Record<string, any>;
}

export type RuntimeKind = "process" | "docker";

/** The agent settings that pick a runtime: nothing for the default process runtime. */
function runtimeEnv(kind: RuntimeKind): Record<string, string> {
  if (kind === "process") return {};
  const docker = testDocker();
  return { PLUM_RUNTIME: "docker", PLUM_DOCKER_SOCKET: docker.socketPath, PLUM_DOCKER_NETWORK: docker.network };
}

/** A product container of an appliance on the docker runtime, from `docker inspect`. */
export interface ProductContainer {
  id: string;
  name: string;
  slot: string;
  version: string;
  image: string;
  running: boolean;
  /** State.StartedAt: unchanged while the container has not been restarted. */
  startedAt: string;
  restartCount: number;
  networks: string[];
  inspect: Docker.ContainerInspectInfo;
}

/** Remove every container of the appliance at `home` (docker runtime), running or not. */
async function removeContainersOf(home: string): Promise<void> {
  const docker = connectDocker(testDocker().socketPath);
  const listed = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.appliance}=${applianceTag(home)}`] }) }).catch(() => []);
  await Promise.all(
    listed.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

export interface UpgradeStatusView {
  active?: UpgradeView;
  latest: UpgradeView;
}

/**
 * A real agent process on its own PLUM_HOME and databases of the test cluster (copies of the migrated
 * templates unless `migrated: false`), with a client on the product database that survives a restore,
 * and the probes the e2e suites ask of it.
 */
export class RunningAppliance {
  /** What plumctl needs to reach this appliance: its databases, PLUM_HOME and the agent's own settings. */
  readonly env: Record<string, string>;
  #product?: pg.Client;

  private constructor(
    readonly home: string,
    readonly dbs: FreshDatabases,
    /** The settings the agent starts with (besides its databases and home). */
    readonly agentEnv: Record<string, string>,
    public agent: AgentProcess,
    /** How its product instances run. */
    readonly runtime: RuntimeKind = "process",
  ) {
    this.env = { ...dbs.env, ...agentEnv, PLUM_HOME: home };
  }

  /**
   * `env`: the agent's settings, or a function of its PLUM_HOME that gives them. `runtime: "docker"`: product
   * instances are containers on the test run's engine and network (testDocker()).
   */
  static async start(
    opts: {
      env?: Record<string, string> | ((home: string) => Record<string, string>);
      migrated?: boolean;
      demoParticipants?: number;
      runtime?: RuntimeKind;
    } = {},
  ): Promise<RunningAppliance> {
    const home = tempHome();
    const dbs = await freshDatabases({ migrated: opts.migrated ?? true });
    const agentEnv = { ...runtimeEnv(opts.runtime ?? "process"), ...(typeof opts.env === "function" ? opts.env(home) : (opts.env ?? {})) };
    try {
      const agent = await startAgentProcess({ home, env: { ...dbs.env, ...agentEnv } });
      const appliance = new RunningAppliance(home, dbs, agentEnv, agent, opts.runtime);
      if (opts.demoParticipants) await appliance.seedDemoData(opts.demoParticipants);
      return appliance;
    } catch (err) {
      if (opts.runtime === "docker") await removeContainersOf(home);
      await dbs.drop();
      removeHome(home);
      throw err;
    }
  }

  /** The demo dataset `plumctl demo-data` loads, loaded in this process (no plumctl to start). */
  async seedDemoData(participants: number): Promise<void> {
    const sequelize = openSequelize(clientConfig(this.dbs.server, this.dbs.product), { poolMax: 5 });
    try {
      await demoDataLoader(sequelize, { participants });
    } finally {
      await sequelize.close();
    }
  }

  /** `plumctl demo-data` itself; throws with its stderr unless it exits 0. Returns its output. */
  async loadDemoData(participants: number): Promise<{ stdout: string; stderr: string }> {
    const demo = await plumctl(["demo-data", "--participants", String(participants)], this.env, 120_000);
    if (demo.code !== 0) throw new Error(`plumctl demo-data exited ${demo.code}:\n${demo.stderr}`);
    return demo;
  }

  /** A client on the product database; a restore terminates it, so `reconnectProduct` after one. */
  async product(): Promise<pg.Client> {
    if (!this.#product) {
      const client = new pg.Client(clientConfig(this.dbs.server, this.dbs.product));
      client.on("error", () => undefined); // a restore terminates every connection to the product database
      await client.connect();
      this.#product = client;
    }
    return this.#product;
  }

  /** Drop the product client (the restore swapped the database); the next `product()` opens a new one. */
  async reconnectProduct(): Promise<pg.Client> {
    await this.#product?.end().catch(() => undefined);
    this.#product = undefined;
    return this.product();
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    return (await this.product()).query<R>(sql, params);
  }

  /** The single number a `select count(*) as n …` answers. */
  async count(sql: string, params?: unknown[]): Promise<number> {
    return Number((await this.query<{ n: string }>(sql, params)).rows[0].n);
  }

  /** Write a programme every 50 ms until stopped, on a connection of its own: rows "written during the upgrade". */
  writer(prefix: string): { stop(): Promise<number> } {
    let n = 0;
    let stop = false;
    const done = (async () => {
      const client = new pg.Client(clientConfig(this.dbs.server, this.dbs.product));
      await client.connect();
      while (!stop) {
        await client.query("insert into programmes (name, kind) values ($1, 'recognition')", [`${prefix}-${++n}`]);
        await new Promise((r) => setTimeout(r, 50));
      }
      await client.end();
      return n;
    })();
    return { stop: () => ((stop = true), done) };
  }

  /** The newest migration of the product database. */
  async schema(): Promise<string> {
    return (await this.query<{ name: string }>("select name from pgmigrations order by run_on desc, id desc limit 1")).rows[0].name;
  }

  /** What the edge proxy serves at /version. */
  async served(): Promise<{ version: string; schemaVersion: string }> {
    return (await (await fetch(new URL("/version", this.agent.proxyUrl))).json()) as { version: string; schemaVersion: string };
  }

  async stagingExists(): Promise<boolean> {
    return (await this.query("select 1 from pg_database where datname = $1", [`${this.dbs.product}_staging`])).rowCount === 1;
  }

  /** The instances the runtime has running in the production slot (its pid records; docker: its container records). */
  productionInstances(): string[] {
    const dir = path.join(homeLayout(this.home).runDir, this.runtime === "docker" ? "containers" : "instances");
    return readdirSync(dir)
      .map((f) => (JSON.parse(readFileSync(path.join(dir, f), "utf8")) as { id: string }).id)
      .filter((id) => id.startsWith("production@"));
  }

  /** Docker runtime: this appliance's containers (instances and one-off commands, running or not), by name. */
  async containers(): Promise<ProductContainer[]> {
    const docker = connectDocker(testDocker().socketPath);
    const listed = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.appliance}=${applianceTag(this.home)}`] }) });
    const found: ProductContainer[] = [];
    for (const c of listed) {
      const inspect = await docker
        .getContainer(c.Id)
        .inspect()
        .catch(() => undefined); // removed since the listing
      if (!inspect) continue;
      const labels = inspect.Config.Labels ?? {};
      found.push({
        id: inspect.Id,
        name: inspect.Name.replace(/^\//, ""),
        slot: labels[LABEL.slot],
        version: labels[LABEL.version],
        image: inspect.Config.Image,
        running: inspect.State.Running,
        startedAt: inspect.State.StartedAt,
        restartCount: inspect.RestartCount,
        networks: Object.keys(inspect.NetworkSettings.Networks ?? {}),
        inspect,
      });
    }
    return found.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The docker network product containers join (the test run's). */
  dockerNetwork(): string {
    return testDocker().network;
  }

  /**
   * The upgrade status `plumctl upgrade status --json` prints, without a plumctl process: from the control
   * API over HTTP, or (the agent stopped or killed) from the journal in the ops database, as plumctl does.
   */
  async upgradeStatus(): Promise<UpgradeStatusView> {
    const link = agentLink(this.home);
    if (link) return callAgent<UpgradeStatusView>(link, "GET", "/upgrades");
    const sequelize = openSequelize(clientConfig(this.dbs.server, this.dbs.ops), { poolMax: 1 });
    try {
      const journal = new UpgradeJournal(sequelize);
      const active = await journal.active();
      const latest = active ?? (await journal.latest());
      return JSON.parse(JSON.stringify({ active, latest })) as UpgradeStatusView;
    } finally {
      await sequelize.close();
    }
  }

  /** A probe for waitFor: the upgrade status once the latest upgrade is in one of `statuses`. */
  upgradeSettled(statuses: string[]): () => Promise<UpgradeStatusView | undefined> {
    return async () => {
      const s = await this.upgradeStatus();
      return statuses.includes(s.latest.status) ? s : undefined;
    };
  }

  /**
   * The appliance the e2e upgrade suites start: the run's vendor key pinned, promotion at once, an 8 s soak
   * (unless `soakSeconds`), 200 demo participants, on the process runtime unless `runtime`.
   */
  static forUpgrades(vendorPublicKeyPem: string, opts: { runtime?: RuntimeKind; soakSeconds?: number } = {}): Promise<RunningAppliance> {
    return RunningAppliance.start({
      env: { PLUM_VENDOR_PUBLIC_KEY: vendorPublicKeyPem, PLUM_UPGRADE_PROMOTION: "now", PLUM_UPGRADE_SOAK_SECONDS: String(opts.soakSeconds ?? 8) },
      demoParticipants: 200,
      runtime: opts.runtime,
    });
  }

  /** Start the agent again on the same home and databases, with `extraEnv` on top of its settings. */
  async startAgent(extraEnv: Record<string, string> = {}): Promise<AgentProcess> {
    this.agent = await startAgentProcess({ home: this.home, env: { ...this.dbs.env, ...this.agentEnv, ...extraEnv } });
    return this.agent;
  }

  async restartAgent(extraEnv: Record<string, string> = {}): Promise<AgentProcess> {
    await this.agent.stop("SIGTERM");
    return this.startAgent(extraEnv);
  }

  async stop(): Promise<void> {
    await this.#product?.end().catch(() => undefined);
    await this.agent.stop("SIGTERM");
    // Containers outlive their agent (one killed, or a test that failed half-way): none of this appliance stays.
    if (this.runtime === "docker") await removeContainersOf(this.home);
    await this.dbs.drop();
    removeHome(this.home);
  }
}
