import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import type { BackupSet } from "../../backup/backup-catalogue.ts";
import type { BackupContext } from "../../backup/backup-context.ts";
import { fileChecks } from "../../backup/restore/manifest-verifier.ts";
import { dropDatabase, rowCountsOf } from "../../backup/restore/whole-databases.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { ledgerChecks } from "../../product/validation/ledger-suite.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { productContextOn, seedProductData } from "../support/restore-fixtures.ts";

const DOC = path.join(import.meta.dirname, "..", "..", "backup", "restore", "plain-restore.md");

/** The one fenced bash block of the document, and the placeholders its table documents. */
function documentedScript(): { script: string; placeholders: string[] } {
  const doc = readFileSync(DOC, "utf8");
  const blocks = [...doc.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks, "plain-restore.md has exactly one bash block").to.have.length(1);
  const placeholders = [...doc.matchAll(/^\| (`<[^|]+>`(?:, `<[^|]+>`)*) \|/gm)].flatMap((m) => [...m[1].matchAll(/`(<[^>]+>)`/g)].map((p) => p[1]));
  return { script: blocks[0], placeholders };
}

describe("restore without the appliance (plain restic + pg_restore, as documented)", () => {
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: BackupContext;
  let set: BackupSet;
  let restoreDir: string;
  const newDatabase = `plain_restore_${process.pid}`;
  const newOpsDatabase = `plain_restore_ops_${process.pid}`;

  before(async () => {
    env = await startBackupEnv();
    ctx = env.ctx;
    await seedProductData(productContextOn(env.product), ctx.filesDir);
    set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    restoreDir = mkdtempSync(path.join(tmpdir(), "plum-plain-restore-"));
  });
  after(async () => {
    await dropDatabase(ctx.pg, newDatabase);
    await dropDatabase(ctx.pg, newOpsDatabase);
    rmSync(restoreDir, { recursive: true, force: true });
    await env.stop();
  });

  it("the documented commands, run literally, restore both databases and the files of a set as its manifest says", async () => {
    const { script, placeholders } = documentedScript();
    const values: Record<string, string> = {
      "<repository>": ctx.repos.primary.location,
      "<password file>": ctx.repos.primary.passwordFile,
      "<set id>": set.id,
      "<db host>": ctx.pg.host,
      "<db port>": String(ctx.pg.port),
      "<db user>": ctx.pg.user,
      "<new database>": newDatabase,
      "<new ops database>": newOpsDatabase,
      "<restore dir>": restoreDir,
    };
    expect(placeholders).to.have.members(Object.keys(values));
    const filled = script.replace(/<[a-z ]+>/g, (p) => values[p] ?? p);
    expect(filled.match(/<[a-z ]+>/g), "every placeholder in the block is documented").to.equal(null);

    // An admin's shell: no appliance variables, the database password in PGPASSWORD as the document says.
    const shellEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(RESTIC_|PG|PLUM_)/.test(k)));
    const run = spawnSync("bash", ["-c", filled], { env: { ...shellEnv, PGPASSWORD: ctx.pg.password }, encoding: "utf8", timeout: 120_000 });
    expect(run.status, `the documented commands failed:\n${run.stderr}`).to.equal(0);
    expect(run.stdout).to.match(new RegExp(`set:${set.id}`));

    const manifest = set.manifest!;
    expect(await rowCountsOf(ctx.pg, newDatabase)).to.deep.equal(manifest.databases["db-plum"].tables);
    expect(await rowCountsOf(ctx.pg, newOpsDatabase)).to.deep.equal(manifest.databases["db-ops"].tables);
    const filesChecks = await fileChecks(path.join(restoreDir, ctx.filesDir), manifest.files);
    expect(filesChecks.filter((c) => !c.passed)).to.deep.equal([]);
    expect(run.stdout).to.contain("manifest.json");

    // A working database: the product's own ledger suite passes on it.
    const restored = openSequelize(clientConfig(ctx.pg, newDatabase), { poolMax: 1 });
    try {
      const failed = (await ledgerChecks({ baseUrl: "", sequelize: restored })).filter((c) => !c.passed);
      expect(failed).to.deep.equal([]);
    } finally {
      await restored.close();
    }
  });
});
