import { expect } from "chai";
import type { Sequelize } from "sequelize";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import type { PlumConfig } from "../../lib/config.ts";
import { PlumError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/logger.ts";
import { waitFor } from "../../lib/wait.ts";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import type { AnswerListener } from "../../appliance/proxy/edge-proxy.ts";
import type { DatabaseRole, ReleaseCatalogue, ReleaseFacts, UpgradeHost } from "../../appliance/upgrade/upgrade-host.ts";
import type { Upgrade } from "../../appliance/upgrade/upgrade-journal.ts";
import { UpgradeJournal } from "../../appliance/upgrade/upgrade-journal.ts";
import { UpgradeManager } from "../../appliance/upgrade/upgrade-manager.ts";
import type { DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";
import type { RowDifferences } from "../../lib/db/row-differences.ts";
import { freshDatabases, type FreshDatabases } from "./databases.ts";
import { PRODUCTION_DATA, RELEASE_NOTES_DECLARED, releaseNotesMigration } from "./fake-fingerprints.ts";

/** What a fault does to the call it matches: fail it, hold it until released, or kill the "agent" there. */
type Fault = { kind: "throw"; message: string } | { kind: "hold"; reached: () => void; released: Promise<void> } | { kind: "crash"; after: boolean };

const never = <T>() => new Promise<T>(() => undefined);

export const UPGRADE_SETTINGS: PlumConfig["upgrades"] = {
  promotion: "now",
  window: { cron: "0 2 * * *", minutes: 120 },
  soakSeconds: 0,
  maxErrorRatio: 0.02,
  maxP99Ms: 2000,
  minSoakRequests: 20,
  unhealthyChecks: 1,
  autoRestore: false,
};

/**
 * What outlives an agent: the databases (schemas, the staging copy), the backup sets, the releases. Instances
 * and the proxy's target die with the agent (`restart()`). Every host call is recorded in `calls`, and faults
 * are injected by the prefix of a call ("commands.migrate production", "staging.restore").
 */
export class FakeWorld {
  readonly releases = new Map<string, ReleaseFacts>();
  readonly schema: Record<DatabaseRole, string | undefined> = { production: undefined, staging: undefined };
  stagingDatabase = false;
  readonly instances = new Map<string, { slot: "production" | "staging"; version: string }>();
  serving?: { id: string; version: string };
  readonly snapshots = new Map<string, string | undefined>();
  /** The product data, as fingerprints: of each database, of each snapshot. */
  readonly data: Record<DatabaseRole, DatabaseFingerprint | undefined> = { production: PRODUCTION_DATA, staging: undefined };
  readonly snapshotData = new Map<string, DatabaseFingerprint | undefined>();
  /** What each release's migrations do to the data (migrating up to its schema), by version. */
  readonly migrationEffects = new Map<string, (f: DatabaseFingerprint) => DatabaseFingerprint>();
  /** What the row-by-row comparison finds, by table (the gate's failure path). */
  readonly rowDifferences = new Map<string, RowDifferences>();
  readonly restored: string[] = [];
  readonly calls: string[] = [];
  readonly listeners = new Set<AnswerListener>();
  settings: PlumConfig["upgrades"] = { ...UPGRADE_SETTINGS };
  /** How the releases behave: suites, the old release on the new schema, down migrations, starts, health. */
  readonly behaviour = {
    releaseSuitesPass: true,
    oldSmokeOnNewSchema: true,
    downMigrationsWork: true,
    cannotStart: new Set<string>(),
    unhealthy: new Set<string>(),
    databaseBytes: 40 * 2 ** 20,
    freeBytes: (10 * 2 ** 30) as number | undefined,
  };
  generation = 0;
  /** How the "agent" writes the support bundle of an unsuccessful upgrade; by default a path and no file. */
  writeSupportBundle: (upgradeId: number, status: string) => Promise<string> = async (id) => `/nonexistent/support-bundle-of-upgrade-${id}.tar.gz`;
  /** Where `writeSupportBundle` puts them, as the host says (the console serves this folder). */
  supportDir = "/nonexistent/support";
  /** The support bundles asked for, by upgrade id (not in `calls`: they follow the upgrade's end). */
  readonly supportBundles: number[] = [];
  private readonly faults: Array<{ prefix: string; fault: Fault }> = [];
  private crashed?: (call: string) => void;

  constructor(releases: Array<{ version: string; schemaVersion: string; dataChanges?: ReleaseFacts["dataChanges"] }>) {
    for (const r of releases) this.releases.set(r.version, { minimumVersion: "0.0.0", suites: ["health", "smoke"], ...r });
    this.schema.production = releases[0].schemaVersion;
    this.migrationEffects.set(V2.version, releaseNotesMigration);
  }

  fail(prefix: string, message = `${prefix} failed (injected)`): void {
    this.faults.push({ prefix, fault: { kind: "throw", message } });
  }

  /** The agent dies at the first call matching `prefix` (after its effect with `after`); resolves with the call. */
  crashAt(prefix: string, opts: { after?: boolean } = {}): Promise<string> {
    this.faults.push({ prefix, fault: { kind: "crash", after: !!opts.after } });
    return new Promise((resolve) => (this.crashed = resolve));
  }

  /** The first call matching `prefix` waits for `release()`; `reached` resolves when it is waiting. */
  hold(prefix: string): { reached: Promise<void>; release(): void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    const released = new Promise<void>((r) => (release = r));
    this.faults.push({ prefix, fault: { kind: "hold", reached, released } });
    return { reached: reachedP, release };
  }

  /** Answers the proxy gives, as the soak sees them. */
  answer(version: string, status: number, times = 1): void {
    for (let i = 0; i < times; i++) for (const l of this.listeners) l({ version, status, seconds: 0.01 });
  }

  takeFault(call: string): Fault | undefined {
    const i = this.faults.findIndex((f) => call.startsWith(f.prefix));
    return i < 0 ? undefined : this.faults.splice(i, 1)[0].fault;
  }

  die(call: string): void {
    this.generation++;
    this.crashed?.(call);
  }

  /** The agent is gone: its instances were stopped by the next one's recovery, the proxy points nowhere. */
  restart(): void {
    this.generation++;
    this.instances.clear();
    this.serving = undefined;
    this.listeners.clear();
  }

  productionInstances(): string[] {
    return [...this.instances.keys()].filter((id) => id.startsWith("production@")).sort();
  }

  facts(version: string): ReleaseFacts {
    const facts = this.releases.get(version);
    if (!facts) throw new PlumError(`release ${version} is not imported`, { hint: "import it first" });
    return facts;
  }
}

/** An UpgradeHost over a FakeWorld. Once its agent "died" (a crash, a restart), every call hangs for ever. */
export class FakeUpgradeHost implements UpgradeHost {
  readonly log = createLogger("fake-upgrade-host", { level: "silent" });
  private readonly generation: number;

  constructor(
    private readonly world: FakeWorld,
    readonly audit: AuditLog,
  ) {
    this.generation = world.generation;
  }

  get settings(): PlumConfig["upgrades"] {
    return this.world.settings;
  }

  private async act<T>(call: string, effect: () => T | Promise<T>): Promise<T> {
    if (this.generation !== this.world.generation) return never();
    this.world.calls.push(call);
    const fault = this.world.takeFault(call);
    if (fault?.kind === "throw") throw new Error(fault.message);
    if (fault?.kind === "hold") {
      fault.reached();
      await fault.released;
    }
    if (fault?.kind === "crash" && !fault.after) {
      this.world.die(call);
      return never();
    }
    const result = await effect();
    if (fault?.kind === "crash") {
      this.world.die(call);
      return never();
    }
    return result;
  }

  private startInstance(slot: "production" | "staging", version: string): string {
    const id = `${slot}@${version}`;
    if (this.world.behaviour.cannotStart.has(version)) throw new Error(`instance ${id} did not become ready`);
    if (slot === "staging" && !this.world.stagingDatabase) throw new Error("there is no staging database");
    this.world.instances.set(id, { slot, version });
    return id;
  }

  readonly releases: ReleaseCatalogue = {
    ref: (version) => ({ version: this.world.facts(version).version, dir: `/releases/${version}`, command: ["plumctl"] }),
    facts: (version) => this.world.facts(version),
    recheck: (version, current) => this.act(`releases.recheck ${version} from ${current}`, () => [`signature: ${version} is the vendor's`]),
    prune: (protect) => {
      this.world.calls.push(`releases.prune keep ${protect.join(",")}`);
      return Promise.resolve([]);
    },
  };

  readonly production: UpgradeHost["production"] = {
    current: () => this.world.serving,
    ensureWarm: (version) =>
      this.act(`production.ensureWarm ${version}`, () => {
        const id = `production@${version}`;
        return this.world.instances.has(id) ? id : this.startInstance("production", version);
      }),
    switchTo: (version, opts = {}) =>
      this.act(`production.switchTo ${version}${opts.keepPrevious ? " keep" : ""}${opts.brief ? " brief" : ""}`, () => {
        const id = `production@${version}`;
        if (!this.world.instances.has(id)) this.startInstance("production", version);
        const previous = this.world.serving;
        if (previous?.id === id) return { instance: id, switchMs: 0, switchedAt: new Date() };
        this.world.serving = { id, version };
        if (previous && !opts.keepPrevious) this.world.instances.delete(previous.id);
        return { instance: id, previous: previous?.id, switchMs: 0.1, switchedAt: new Date() };
      }),
    stop: (version) => this.act(`production.stop ${version}`, () => void this.world.instances.delete(`production@${version}`)),
    health: (version) =>
      this.act(`production.health ${version}`, () => {
        const ready = this.world.instances.has(`production@${version}`) && !this.world.behaviour.unhealthy.has(version);
        return { live: ready, ready, detail: ready ? "ready" : "down", checkedAt: new Date() };
      }),
    onAnswer: (listener) => {
      this.world.listeners.add(listener);
      return () => this.world.listeners.delete(listener);
    },
  };

  readonly staging: UpgradeHost["staging"] = {
    restore: (setId) =>
      this.act(`staging.restore ${setId}`, () => {
        if (!this.world.snapshots.has(setId)) throw new Error(`set ${setId} is not in the catalogue`);
        this.world.stagingDatabase = true;
        this.world.schema.staging = this.world.snapshots.get(setId);
        this.world.data.staging = this.world.snapshotData.get(setId);
        const verified = this.world.data.staging;
        return { checks: 12, failed: [], ...(verified ? { fingerprint: { fingerprint: verified, seconds: 0.01 } } : {}) };
      }),
    fingerprint: () =>
      this.act("staging.fingerprint", () => {
        if (!this.world.stagingDatabase || !this.world.data.staging) throw new Error("there is no staging database");
        return { fingerprint: structuredClone(this.world.data.staging), seconds: 0.01 };
      }),
    rowDifferences: (setId, tables) =>
      this.act(`staging.rowDifferences ${setId} ${tables.map((t) => t.after.table).join(",")}`, () =>
        tables.map((t) => {
          const found = this.world.rowDifferences.get(t.after.table);
          return found ? { table: t.after.table, differences: found } : { table: t.after.table, error: "no row comparison in the fake world" };
        }),
      ),
    start: (version) => this.act(`staging.start ${version}`, () => ({ url: `http://${this.startInstance("staging", version)}` })),
    stop: (version) => this.act(`staging.stop ${version}`, () => void this.world.instances.delete(`staging@${version}`)),
    drop: () =>
      this.act("staging.drop", () => {
        for (const [id, i] of this.world.instances) if (i.slot === "staging") this.world.instances.delete(id);
        this.world.stagingDatabase = false;
        this.world.schema.staging = undefined;
        this.world.data.staging = undefined;
      }),
  };

  readonly commands: UpgradeHost["commands"] = {
    migrate: (version, database, opts = {}) =>
      this.act(`commands.migrate ${database} ${version}${opts.to ? ` to ${opts.to}` : ""}`, () => {
        if (database === "staging" && !this.world.stagingDatabase) throw new Error("there is no staging database");
        const target = opts.to ?? this.world.facts(version).schemaVersion;
        if (opts.to && !this.world.behaviour.downMigrationsWork) throw new Error(`${version}'s down migrations failed (injected)`);
        const ran = this.world.schema[database] === target ? [] : [target];
        this.world.schema[database] = target;
        const effect = this.world.migrationEffects.get(version);
        const data = this.world.data[database];
        if (ran.length > 0 && !opts.to && effect && data) this.world.data[database] = effect(data);
        return { ran, schemaVersion: target, seconds: 0.01 };
      }),
    validate: (version, _url, database, suites) =>
      this.act(`commands.validate ${database} ${version} ${suites.join(",")}`, () => {
        const onItsSchema = this.world.facts(version).schemaVersion === this.world.schema[database];
        const passed = onItsSchema ? this.world.behaviour.releaseSuitesPass : this.world.behaviour.oldSmokeOnNewSchema;
        const checks = [{ name: `${suites.join("+")} on ${database}`, passed, ...(passed ? {} : { detail: "failed (injected)" }) }];
        return {
          passed,
          reports: suites.map((suite) => ({ suite, passed, checks })),
          failures: passed ? [] : [`${suites[0]}: failed (injected)`],
          seconds: 0.01,
        };
      }),
  };

  disk() {
    return this.act("disk", () => ({ databaseBytes: this.world.behaviour.databaseBytes, freeBytes: this.world.behaviour.freeBytes }));
  }

  snapshot(actor: string) {
    return this.act(`snapshot for ${actor}`, () => {
      const setId = `set-${this.world.snapshots.size + 1}`;
      this.world.snapshots.set(setId, this.world.schema.production);
      this.world.snapshotData.set(setId, this.world.data.production);
      return { setId, takenAt: new Date() };
    });
  }

  get supportDir(): string {
    return this.world.supportDir;
  }

  async supportBundle(upgradeId: number, status: string): Promise<string> {
    if (this.generation !== this.world.generation) return never();
    this.world.supportBundles.push(upgradeId);
    return this.world.writeSupportBundle(upgradeId, status);
  }

  restoreProduction(setId: string, actor: string) {
    return this.act(`restoreProduction ${setId} by ${actor}`, () => {
      this.world.schema.production = this.world.snapshots.get(setId);
      this.world.data.production = this.world.snapshotData.get(setId);
      this.world.restored.push(setId);
    });
  }
}

/**
 * A (re)started agent as far as upgrades go, the way Agent.start does it: serve the pointer's release (falling
 * back when it cannot start), then resume an interrupted upgrade.
 */
export async function bootAgent(world: FakeWorld, sequelize: Sequelize, installed: string) {
  world.restart();
  const host = new FakeUpgradeHost(world, new AuditLog(sequelize));
  const journal = new UpgradeJournal(sequelize);
  const manager = new UpgradeManager(host, journal);
  await manager.serveAtBoot(installed, (version) => host.production.switchTo(version));
  const resumed = await manager.resume();
  return { host, journal, manager, resumed };
}

/** Wait until an upgrade is finished (not merely resting at a gate). */
export function finished(journal: UpgradeJournal, id: number, timeoutMs = 15_000): Promise<Upgrade> {
  return waitFor(
    `upgrade ${id} to finish`,
    async () => {
      const u = await journal.get(id);
      return u?.finishedAt ? u : undefined;
    },
    { timeoutMs, firstDelayMs: 10, maxDelayMs: 50 },
  );
}

/** Wait until an upgrade rests: finished, waiting for promotion, or waiting for a restore confirmation. */
export function settled(journal: UpgradeJournal, id: number, timeoutMs = 15_000): Promise<Upgrade> {
  return waitFor(
    `upgrade ${id} to settle`,
    async () => {
      const u = await journal.get(id);
      return u && (u.finishedAt || u.status === "waiting" || u.status === "restore-pending") ? u : undefined;
    },
    { timeoutMs, firstDelayMs: 10, maxDelayMs: 50 },
  );
}

export const V1 = { version: "0.1.0", schemaVersion: "1732000000200_payouts" };
export const V2 = { version: "0.2.0", schemaVersion: "1732000000500_release-notes", dataChanges: RELEASE_NOTES_DECLARED };

/**
 * The test bed of the upgrade-manager tests: one migrated plum_ops database of the test cluster for the file
 * (a real journal, a real audit log), reset between tests (no unfinished upgrade, no production pointer).
 */
export function upgradeTestBed(): { readonly sequelize: Sequelize; readonly dbs: FreshDatabases } {
  let dbs: FreshDatabases | undefined;
  let sequelize: Sequelize | undefined;
  before(async () => {
    dbs = await freshDatabases({ migrated: true });
    sequelize = openSequelize(clientConfig(dbs.server, dbs.ops), { poolMax: 4 });
  });
  beforeEach(async () => {
    await sequelize!.query("update upgrades set status = 'failed', error = 'closed by the test bed', finished_at = now() where finished_at is null");
    await sequelize!.query("delete from production_release");
  });
  after(async () => {
    await sequelize?.close();
    await dbs?.drop();
  });
  return {
    get sequelize() {
      return sequelize!;
    },
    get dbs() {
      return dbs!;
    },
  };
}

/**
 * An appliance at rest after an upgrade: exactly one production instance, of `serves`, which the proxy sends
 * traffic to and the pointer names; production's schema; no staging copy or instance; journal and audit intact.
 */
export async function expectAtRest(world: FakeWorld, sequelize: Sequelize, expected: { serves: string; schema: string }): Promise<void> {
  expect(world.productionInstances(), "production instances").to.deep.equal([`production@${expected.serves}`]);
  expect(
    [...world.instances.keys()].filter((id) => id.startsWith("staging@")),
    "staging instances",
  ).to.deep.equal([]);
  expect(world.serving?.version, "the proxy's target").to.equal(expected.serves);
  expect(world.schema.production, "production's schema").to.equal(expected.schema);
  expect(world.stagingDatabase, "a staging database").to.equal(false);
  const journal = new UpgradeJournal(sequelize);
  // An appliance never upgraded (or whose upgrades were all undone) has no pointer: the installed release serves.
  expect(await journal.productionVersion(), "the production pointer").to.be.oneOf(expected.serves === V1.version ? [undefined, V1.version] : [expected.serves]);
  expect((await journal.verify()).ok, "the journal's chain").to.equal(true);
  expect((await new AuditLog(sequelize).verify()).ok, "the audit chain").to.equal(true);
}

/** A refusal: the promise rejects with exactly this message. */
export async function expectRefusal(work: Promise<unknown>, message: string): Promise<void> {
  const err = await work.then(
    () => undefined,
    (e: Error) => e,
  );
  expect(err?.message).to.equal(message);
}
