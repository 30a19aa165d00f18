import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import pg from "pg";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import type { BackupContext } from "../../backup/backup-context.ts";
import type { SetManifest } from "../../backup/backup-types.ts";
import { recoveryKit } from "../../backup/recovery-kit.ts";
import { fileChecks } from "../../backup/restore/manifest-verifier.ts";
import { dropDatabase, rowCountsOf } from "../../backup/restore/whole-databases.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { loadConfig } from "../../lib/config.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { ledgerChecks } from "../../product/validation/ledger-suite.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { productContextOn, seedProductData } from "../support/restore-fixtures.ts";

const DOC = path.join(import.meta.dirname, "..", "..", "backup", "restore", "plain-restore.md");
const PLACEHOLDER = /<[A-Za-z_ ]+>/g;

/** The one fenced bash block of the document, and the placeholders its table documents. */
function documentedScript(): { script: string; placeholders: string[] } {
  const doc = readFileSync(DOC, "utf8");
  const blocks = [...doc.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks, "plain-restore.md has exactly one bash block").to.have.length(1);
  const placeholders = [...doc.matchAll(/^\| (`<[^|]+>`(?:, `<[^|]+>`)*) \|/gm)].flatMap((m) => [...m[1].matchAll(/`(<[^>]+>)`/g)].map((p) => p[1]));
  return { script: blocks[0], placeholders };
}

/** One value the recovery kit prints, found as an admin reading it would. */
function fromKit(kit: string, pattern: RegExp, what: string): string {
  const found = pattern.exec(kit)?.[1];
  expect(found, `the recovery kit names ${what}`).to.be.a("string");
  return found!;
}

/**
 * An admin restores a set on another host with the recovery kit and the document only: a PLUM_HOME of a
 * different layout, the repository password from the kit in a file of their own, no appliance running.
 */
describe("restore without the appliance, on another host (plain restic + pg_restore, as documented)", () => {
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  let set: BackupSet;
  let kit: string;
  let secondHost: string;
  let restoreDir: string;
  const newDatabase = `plain_restore_${process.pid}`;
  const newOpsDatabase = `plain_restore_ops_${process.pid}`;

  before(async () => {
    // Values from the environment, as a service unit sets them: plum.yaml alone does not hold them.
    env = await startBackupEnv({ env: { PLUM_HTTP_PORT: "9191", PLUM_BACKUP_SCHEDULER: "false" } });
    ctx = env.ctx;
    await seedProductData(productContextOn(env.product), ctx.filesDir);
    set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    kit = await recoveryKit(ctx, readFileSync(DOC, "utf8"));
    secondHost = mkdtempSync(path.join(tmpdir(), "plum-second-host-"));
    restoreDir = mkdtempSync(path.join(tmpdir(), "plum-plain-restore-"));
  });
  after(async () => {
    await dropDatabase(ctx.pg, newDatabase);
    await dropDatabase(ctx.pg, newOpsDatabase);
    rmSync(restoreDir, { recursive: true, force: true });
    rmSync(secondHost, { recursive: true, force: true });
    await env.stop();
  });

  it("the recovery kit names what a fresh host needs: the original PLUM_HOME, the set ids, the server package", () => {
    expect(fromKit(kit, /^ {2}PLUM_HOME: (.+)$/m, "the original PLUM_HOME")).to.equal(ctx.config.home);
    expect(fromKit(kit, /^ {2}(\d{8}T\d{6}-[0-9a-f]{6}) {2}manual /m, "the latest set")).to.equal(set.id);
    expect(kit).to.include(`release ${set.appVersion}  schema ${set.schemaVersion}`);
    expect(kit).to.include(`files directory: ${ctx.filesDir}`);
    expect(kit).to.include("apt-get install restic postgresql-15 postgresql-client-15");
  });

  it("the documented commands, run literally on a second layout, restore both databases, the files where this host wants them, and the configuration in effect", async () => {
    const { script, placeholders } = documentedScript();
    // What the admin copies from the kit: the repository, its password (into a 0600 file of their own), the set, the old home.
    const passwordFile = path.join(secondHost, "restic-password");
    writeFileSync(passwordFile, fromKit(kit, /^Repository password[^\n]*\n {2}(\S+)$/m, "the password") + "\n", { mode: 0o600 });
    chmodSync(passwordFile, 0o600);
    const newFilesDir = path.join(secondHost, "files");
    const values: Record<string, string> = {
      "<repository>": fromKit(kit, /^ {2}primary: (.+)$/m, "the primary repository"),
      "<password file>": passwordFile,
      "<set id>": fromKit(kit, /^ {2}(\d{8}T\d{6}-[0-9a-f]{6}) /m, "a set id"),
      "<original PLUM_HOME>": fromKit(kit, /^ {2}PLUM_HOME: (.+)$/m, "the original PLUM_HOME"),
      "<db host>": ctx.pg.host,
      "<db port>": String(ctx.pg.port),
      "<db user>": ctx.pg.user,
      "<new database>": newDatabase,
      "<new ops database>": newOpsDatabase,
      "<restore dir>": restoreDir,
      "<new files dir>": newFilesDir,
    };
    expect(placeholders).to.have.members(Object.keys(values));
    const filled = script.replace(PLACEHOLDER, (p) => values[p] ?? p);
    expect(filled.match(PLACEHOLDER), "every placeholder in the block is documented").to.equal(null);

    // An admin's shell: no appliance variables, the database password in PGPASSWORD as the document says.
    const shellEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(RESTIC_|PG|PLUM_)/.test(k)));
    const run = spawnSync("bash", ["-c", filled], { env: { ...shellEnv, PGPASSWORD: ctx.pg.password }, encoding: "utf8", timeout: 120_000 });
    expect(run.status, `the documented commands failed:\n${run.stderr}`).to.equal(0);
    expect(run.stdout).to.match(new RegExp(`set:${set.id}`));

    // The set's records, where the document says they are, and its manifest as the catalogue has it.
    const records = path.join(restoreDir, ctx.config.home, "run", "backup", "set-staging");
    expect(readdirSync(records).sort()).to.deep.equal(["manifest.json", "plum.effective.yaml", "plum.yaml"]);
    expect(run.stdout).to.contain("manifest.json").and.contain("plum.effective.yaml");
    const manifest = JSON.parse(readFileSync(path.join(records, "manifest.json"), "utf8")) as SetManifest;
    expect(manifest).to.deep.equal(set.manifest);

    expect(await rowCountsOf(ctx.pg, newDatabase)).to.deep.equal(manifest.databases["db-plum"].tables);
    expect(await rowCountsOf(ctx.pg, newOpsDatabase)).to.deep.equal(manifest.databases["db-ops"].tables);
    // The files in this host's files directory, the old absolute path left behind in the restore dir.
    const filesChecks = await fileChecks(newFilesDir, manifest.files);
    expect(filesChecks.filter((c) => !c.passed)).to.deep.equal([]);
    const restored = readdirSync(newFilesDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    expect(restored.map((e) => path.relative(newFilesDir, path.join(e.parentPath, e.name))).sort()).to.deep.equal(manifest.files.map((f) => f.path).sort());
    expect(existsSync(path.join(secondHost, "files", ...ctx.config.home.split(path.sep)))).to.equal(false);
    expect(statSync(newFilesDir).isDirectory()).to.equal(true);

    // A working database: the product's own ledger suite passes on it.
    const product = openSequelize(clientConfig(ctx.pg, newDatabase), { poolMax: 1 });
    try {
      const failed = (await ledgerChecks({ baseUrl: "", sequelize: product })).filter((c) => !c.passed);
      expect(failed).to.deep.equal([]);
    } finally {
      await product.close();
    }

    // plum.yaml as written lost what the environment set; the configuration in effect has it, the password masked.
    const effective = readFileSync(path.join(records, "plum.effective.yaml"), "utf8");
    expect(readFileSync(path.join(records, "plum.yaml"), "utf8"))
      .to.not.contain("9191")
      .and.not.contain(ctx.databases.product);
    expect(effective).to.contain("port: 9191 # from PLUM_HTTP_PORT").and.contain(`PLUM_HOME was ${ctx.config.home}.`);
    expect(effective).to.not.contain(ctx.pg.password);
    writeFileSync(path.join(secondHost, "plum.yaml"), effective);
    const onSecondHost = loadConfig({ PLUM_HOME: secondHost });
    const original = ctx.config;
    expect(onSecondHost.http.port).to.equal(9191);
    expect(onSecondHost.backup.scheduler).to.equal(false);
    expect(onSecondHost.database).to.deep.equal({ ...original.database, url: original.database.url!.replace(`:${ctx.pg.password}@`, ":REDACTED@") });
    expect({ ...onSecondHost, home: original.home, configFile: original.configFile, database: original.database }).to.deep.equal(original);

    // The restored plum_ops tells the truth about the set it came from: captured, not still running.
    const ops = new pg.Client(clientConfig(ctx.pg, newOpsDatabase));
    await ops.connect();
    try {
      const { rows } = await ops.query<{ status: string }>("select status from backup_sets where id = $1", [set.id]);
      expect(rows).to.deep.equal([{ status: "captured" }]);
    } finally {
      await ops.end();
    }
    expect((await ctx.sets.findByPk(set.id))?.status).to.equal("succeeded");
  });
});
