import { randomBytes } from "node:crypto";
import { expect } from "chai";
import pg from "pg";
import type { Sequelize } from "sequelize";
import { clientConfig, connectAdmin, type PgServer } from "../../lib/db/database.ts";
import { clientConfigFromUrl } from "../../lib/db/connection-url.ts";
import { ensureProductRoles, productRolesSql, type ProductRoles } from "../../lib/db/product-roles.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { environOf } from "../../lib/processes.ts";
import type { ProductContext } from "../../product/product-context.ts";
import { testServer } from "../support/databases.ts";
import { award, buildItem, buildMerchant, buildParticipant, buildProgramme } from "../support/factories.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { productContextOn } from "../support/restore-fixtures.ts";

/** What a query's refusal says: its SQLSTATE and message (an accepted query is a finding). */
async function refusal(client: pg.Client, sql: string): Promise<{ code?: string; message: string }> {
  try {
    await client.query(sql);
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  throw new Error(`the product's own credentials were allowed: ${sql}`);
}

describe("attack: the product instance's own database credentials", function () {
  this.timeout(180_000);
  let running: Awaited<ReturnType<typeof startInProcessAgent>>;
  let config: pg.ClientConfig;
  let client: pg.Client;

  before(async () => {
    running = await startInProcessAgent();
    // Read the way the attacker who runs code in the instance reads them: from the running instance's environment.
    const serving = running.agent.production.current()!;
    const pid = running.agent.runtime.list().find((i) => i.id === serving.id)!.pid!;
    const url = /(?:^| )PLUM_PRODUCT_DATABASE_URL=(\S+)/.exec(environOf(pid))?.[1];
    expect(url, "the instance's environment names its database").to.be.a("string");
    config = clientConfigFromUrl(url!, "the instance's PLUM_PRODUCT_DATABASE_URL");
    client = new pg.Client(config);
    await client.connect();
  });
  after(async () => {
    await client?.end();
    await running?.stop();
  });

  it("logs in as a role with no superuser, CREATEDB, CREATEROLE or replication, and it owns no table", async () => {
    const { rows } = await client.query(
      "select current_user as user, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls from pg_roles where rolname = current_user",
    );
    expect(rows[0]).to.deep.equal({
      user: running.dbs.roles.app,
      rolsuper: false,
      rolcreatedb: false,
      rolcreaterole: false,
      rolreplication: false,
      rolbypassrls: false,
    });
    const owned = await client.query(
      "select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relowner = (select oid from pg_roles where rolname = current_user)",
    );
    expect(owned.rows[0].n).to.equal(0);
  });

  it("cannot connect to plum_ops (so cannot read the audit log, sessions or evidence)", async () => {
    const ops = new pg.Client({ ...config, database: running.dbs.ops });
    ops.on("error", () => undefined);
    const err = await ops.connect().then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    await ops.end().catch(() => undefined);
    expect(err, "connecting to plum_ops was allowed").to.be.instanceOf(Error);
    expect(err!.code).to.equal("42501");
    expect(err!.message).to.equal(`permission denied for database "${running.dbs.ops}"`);
  });

  it("cannot run an OS command through COPY … TO PROGRAM", async () => {
    const r = await refusal(client, "copy (select 1) to program 'true'");
    expect(r.code).to.equal("42501");
    expect(r.message).to.equal("must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program");
  });

  it("cannot switch triggers off for its session (session_replication_role = replica)", async () => {
    const r = await refusal(client, "set session_replication_role = replica");
    expect(r).to.deep.equal({ code: "42501", message: 'permission denied to set parameter "session_replication_role"' });
    const local = await refusal(client, "begin; set local session_replication_role = replica");
    await client.query("rollback");
    expect(local.code).to.equal("42501");
  });

  it("cannot disable or drop the ledger's triggers, nor create a table", async () => {
    expect(await refusal(client, "alter table ledger_entries disable trigger all")).to.deep.equal({
      code: "42501",
      message: "must be owner of table ledger_entries",
    });
    expect(await refusal(client, "drop trigger ledger_entries_append_only on ledger_entries")).to.deep.equal({
      code: "42501",
      message: "must be owner of relation ledger_entries",
    });
    expect(await refusal(client, "drop function ledger_entries_append_only() cascade")).to.deep.equal({
      code: "42501",
      message: "must be owner of function ledger_entries_append_only",
    });
    expect((await refusal(client, "create table public.stash (x int)")).code).to.equal("42501");
    expect((await refusal(client, "insert into pgmigrations (name, run_on) values ('forged', now())")).code).to.equal("42501");
  });

  describe("yet the product's own work passes with them", () => {
    let sequelize: Sequelize;
    let ctx: ProductContext;
    before(() => {
      sequelize = openSequelize(config, { poolMax: 4 });
      ctx = productContextOn(sequelize);
    });
    after(() => sequelize?.close());

    it("creates programmes, participants, merchants and items, awards points, and the ledger stays append-only", async () => {
      await buildProgramme(ctx);
      const participant = await buildParticipant(ctx);
      const item = await buildItem(ctx, (await buildMerchant(ctx)).merchant.id);
      expect(item.stock).to.equal(10);
      await award(ctx, participant.id, 250);
      const { rows } = await client.query("select coalesce(sum(points), 0)::int as balance from ledger_entries where participant_id = $1", [participant.id]);
      expect(rows[0].balance).to.equal(250);
      const r = await refusal(client, `update ledger_entries set points = 1000000 where participant_id = ${participant.id}`);
      expect(r.message).to.match(/append-only/);
      expect((await fetch(`${running.agent.urls.proxy}/readyz`)).status).to.equal(200);
    });
  });
});

describe("the client's own PostgreSQL with a user that may not create roles", function () {
  this.timeout(60_000);
  const suffix = randomBytes(4).toString("hex");
  const user = `t_nocreaterole_${suffix}`;
  const roles: ProductRoles = {
    app: { name: `t_app_${suffix}`, password: randomBytes(18).toString("base64url") },
    migrate: { name: `t_migrate_${suffix}`, password: randomBytes(18).toString("base64url") },
  };
  const password = randomBytes(18).toString("base64url");
  // Read in the hooks: the test cluster's address is known once the global setup ran.
  let superuser: PgServer;
  let limited: PgServer;

  async function asSuperuser(sql: string): Promise<void> {
    const c = await connectAdmin(superuser);
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  }
  before(async () => {
    superuser = testServer();
    limited = { ...superuser, user, password };
    await asSuperuser(`create role ${user} login password ${pg.escapeLiteral(password)}`);
  });
  after(async () => {
    for (const r of [roles.app.name, roles.migrate.name, user]) await asSuperuser(`drop role if exists ${r}`).catch(() => undefined);
  });

  it("refuses to start, naming the SQL for a DBA (SCRAM verifiers, never the passwords), and starts once a DBA ran it", async () => {
    const err = await ensureProductRoles(limited, roles).then(
      () => undefined,
      (e: Error & { hint?: string; detail?: string }) => e,
    );
    expect(err, "the roles were made without CREATEROLE").to.be.instanceOf(Error);
    expect(err!.message).to.equal(
      `the PostgreSQL user "${user}" may not create roles, and "${roles.app.name}" and "${roles.migrate.name}" cannot log in with the appliance's passwords`,
    );
    expect(err!.hint).to.include("plumctl database roles-sql");
    expect(err!.detail).to.include(`CREATE ROLE "${roles.app.name}" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION`);
    expect(err!.detail).to.include(`GRANT "${roles.migrate.name}" TO "${user}";`);
    for (const r of Object.values(roles)) expect(err!.detail, "a password in the DBA's SQL").not.to.include(r.password);

    // The DBA runs it as printed, statement by statement.
    const c = await connectAdmin(superuser);
    try {
      await c.query(productRolesSql(roles, user));
    } finally {
      await c.end();
    }
    await ensureProductRoles(limited, roles);
    const app = new pg.Client(clientConfig({ ...superuser, user: roles.app.name, password: roles.app.password }, "postgres"));
    await app.connect();
    await app.end();
  });
});
