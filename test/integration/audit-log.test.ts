import { expect } from "chai";
import path from "node:path";
import pg from "pg";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { plumctl } from "../support/plumctl.ts";

describe("audit log (hash-chained, append-only, in plum_ops)", () => {
  let dbs: FreshDatabases;
  let home: string;
  let audit: AuditLog;
  let sequelize: ReturnType<typeof openSequelize>;
  let sql: pg.Client;

  beforeEach(async () => {
    dbs = await freshDatabases({ migrated: true });
    home = tempHome();
    sequelize = openSequelize(clientConfig(dbs.server, dbs.ops));
    audit = new AuditLog(sequelize);
    sql = new pg.Client(clientConfig(dbs.server, dbs.ops));
    await sql.connect();
    for (let i = 1; i <= 6; i++) await audit.append({ actor: "user:admin", action: "user.create", target: `user:u${i}`, detail: { role: "operator", n: i } });
  });

  afterEach(async () => {
    await sql.end();
    await sequelize.close();
    await dbs.drop();
    removeHome(home);
  });

  /** Tampering as a database superuser would: past the append-only trigger. */
  async function tamper(statement: string): Promise<void> {
    await sql.query("alter table audit_log disable trigger audit_log_append_only");
    await sql.query(statement);
    await sql.query("alter table audit_log enable trigger audit_log_append_only");
  }

  const verifyCli = () => plumctl(["audit", "verify"], { ...dbs.env, PLUM_HOME: home });
  /** No agent ran on this home: the chain has no checkpoint, which the verdict says. */
  const unanchored = () => `  anchors: not anchored yet: no checkpoint of audit_log in ${path.join(home, "anchors", "chain-anchors.jsonl")}\n`;

  it("chains every row to the one before and verifies", async () => {
    const rows = await audit.list({ limit: 10 });
    expect(rows.map((r) => r.id)).to.deep.equal([6, 5, 4, 3, 2, 1]);
    expect(rows[0].prevHash).to.equal(rows[1].hash);
    expect(await audit.verify()).to.deep.equal({ ok: true, checked: 6, firstBad: undefined });
    const cli = await verifyCli();
    expect(cli.code).to.equal(0);
    expect(cli.stdout).to.equal("audit log verified: 6 rows, chain intact\n" + unanchored());
  });

  it("serialises concurrent appends into one unbroken chain", async () => {
    await Promise.all(Array.from({ length: 25 }, (_, i) => audit.append({ actor: "agent", action: "load", detail: { i } })));
    const verdict = await audit.verify();
    expect(verdict).to.include({ ok: true, checked: 31 });
  });

  it("is refused UPDATE, DELETE and TRUNCATE by the database itself", async () => {
    for (const statement of ["update audit_log set actor = 'x' where id = 2", "delete from audit_log where id = 2", "truncate audit_log"]) {
      const error = await sql.query(statement).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message, statement).to.match(/audit_log is append-only/);
    }
  });

  it("`plumctl audit verify` exits 1 and names an edited row", async () => {
    await tamper(`update audit_log set detail = '{"role":"admin","n":3}' where id = 3`);
    const cli = await verifyCli();
    expect(cli.code).to.equal(1);
    expect(cli.stdout).to.equal("audit log BROKEN at row 3: row 3 was edited: its content does not match its hash\n" + unanchored());
  });

  it("`plumctl audit verify` exits 1 and names the row after a deleted one", async () => {
    await tamper("delete from audit_log where id = 2");
    const cli = await verifyCli();
    expect(cli.code).to.equal(1);
    expect(cli.stdout).to.equal("audit log BROKEN at row 3: row 3 follows row 1: row 2 deleted\n" + unanchored());
  });

  it("`plumctl audit verify` exits 1 when the newest row is deleted", async () => {
    await tamper("delete from audit_log where id = 6");
    const cli = await verifyCli();
    expect(cli.code).to.equal(1);
    expect(cli.stdout).to.equal("audit log BROKEN at row 6: row 6 is missing: the chain's head says it ends at row 6\n" + unanchored());
  });

  it("`plumctl audit verify` exits 1 when two rows are reordered", async () => {
    // Swap the contents of rows 4 and 5, hashes and all, keeping their ids in place.
    await tamper(`
      update audit_log a set at = b.at, actor = b.actor, action = b.action, target = b.target, detail = b.detail, prev_hash = b.prev_hash, hash = b.hash
      from (select * from audit_log where id in (4, 5)) b where a.id in (4, 5) and b.id = 9 - a.id`);
    const cli = await verifyCli();
    expect(cli.code).to.equal(1);
    expect(cli.stdout).to.match(/^audit log BROKEN at row 4: /);
  });
});
