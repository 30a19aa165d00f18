import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { agentLink, callAgent } from "../../appliance/control/control-client.ts";
import { UpgradeJournal } from "../../appliance/upgrade/upgrade-journal.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { homeLayout } from "../../lib/paths.ts";
import { demoDataLoader } from "../../product/demo/demo-data.ts";
import { removeHome, startAgentProcess, tempHome, type AgentProcess } from "./agent-process.ts";
import { freshDatabases, type FreshDatabases } from "./databases.ts";
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
  ) {
    this.env = { ...dbs.env, ...agentEnv, PLUM_HOME: home };
  }

  /** `env`: the agent's settings, or a function of its PLUM_HOME that gives them. */
  static async start(
    opts: { env?: Record<string, string> | ((home: string) => Record<string, string>); migrated?: boolean; demoParticipants?: number } = {},
  ): Promise<RunningAppliance> {
    const home = tempHome();
    const dbs = await freshDatabases({ migrated: opts.migrated ?? true });
    const agentEnv = typeof opts.env === "function" ? opts.env(home) : (opts.env ?? {});
    try {
      const agent = await startAgentProcess({ home, env: { ...dbs.env, ...agentEnv } });
      const appliance = new RunningAppliance(home, dbs, agentEnv, agent);
      if (opts.demoParticipants) await appliance.seedDemoData(opts.demoParticipants);
      return appliance;
    } catch (err) {
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

  /** The instances the runtime has running in the production slot (its pid records). */
  productionInstances(): string[] {
    const dir = path.join(homeLayout(this.home).runDir, "instances");
    return readdirSync(dir)
      .map((f) => (JSON.parse(readFileSync(path.join(dir, f), "utf8")) as { id: string }).id)
      .filter((id) => id.startsWith("production@"));
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
   * The appliance the e2e upgrade suites start: the run's vendor key pinned, promotion at once, an 8 s soak,
   * 200 demo participants.
   */
  static forUpgrades(vendorPublicKeyPem: string): Promise<RunningAppliance> {
    return RunningAppliance.start({
      env: { PLUM_VENDOR_PUBLIC_KEY: vendorPublicKeyPem, PLUM_UPGRADE_PROMOTION: "now", PLUM_UPGRADE_SOAK_SECONDS: "8" },
      demoParticipants: 200,
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
    await this.dbs.drop();
    removeHome(this.home);
  }
}
