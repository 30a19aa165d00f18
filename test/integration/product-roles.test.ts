import { randomBytes } from "node:crypto";
import { expect } from "chai";
import pg from "pg";
import { clientConfig } from "../../lib/db/database.ts";
import { migrateProductDatabase, privilegesMarker, privilegesMarkerOf, type ProductRoles } from "../../lib/db/product-roles.ts";
import { PRODUCT_MIGRATIONS_DIR } from "../../lib/version.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";

describe("product roles: the grants of an agent's start, applied once per set", function () {
  this.timeout(120_000);
  let dbs: FreshDatabases;
  let roles: ProductRoles;

  async function asSuperuser<T>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
    const c = new pg.Client(clientConfig(dbs.server, dbs.product));
    await c.connect();
    try {
      return await c.query<T & pg.QueryResultRow>(sql, params);
    } finally {
      await c.end();
    }
  }
  const appMaySelectParticipants = async () =>
    (await asSuperuser<{ ok: boolean }>("select has_table_privilege($1, 'public.participants', 'select') as ok", [roles.app.name])).rows[0].ok;
  const start = () => migrateProductDatabase(dbs.server, dbs.product, roles, { dir: PRODUCT_MIGRATIONS_DIR });

  before(async () => {
    dbs = await freshDatabases({ migrated: true });
    roles = {
      app: { name: dbs.roles.app, password: randomBytes(18).toString("base64url") },
      migrate: { name: dbs.roles.migrate, password: randomBytes(18).toString("base64url") },
    };
  });
  after(async () => {
    await dbs?.drop();
  });

  it("applies them on a database without the marker, and leaves the marker in its comment", async () => {
    expect(await privilegesMarkerOf(dbs.server, dbs.product)).to.equal(undefined);
    expect(await start()).to.deep.equal({ ran: [], privileges: "applied" });
    expect(await privilegesMarkerOf(dbs.server, dbs.product)).to.equal(privilegesMarker(dbs.roles));
    expect(await privilegesMarkerOf(dbs.server, dbs.product)).to.match(/^plum product grants sha256:[0-9a-f]{32}$/);
    expect(await appMaySelectParticipants()).to.equal(true);
  });

  it("skips an unchanged set at the next start (a grant taken away by hand stays away)", async () => {
    await asSuperuser(`revoke select on participants from ${pg.escapeIdentifier(roles.app.name)}`);
    expect(await start()).to.deep.equal({ ran: [], privileges: "unchanged" });
    expect(await appMaySelectParticipants()).to.equal(false);
  });

  it("applies them again when the marker is another set's (grants changed by a release of the agent)", async () => {
    await asSuperuser(`comment on database ${pg.escapeIdentifier(dbs.product)} is 'plum product grants sha256:${"0".repeat(32)}'`);
    expect(await start()).to.deep.equal({ ran: [], privileges: "applied" });
    expect(await appMaySelectParticipants()).to.equal(true);
    expect(await privilegesMarkerOf(dbs.server, dbs.product)).to.equal(privilegesMarker(dbs.roles));
  });

  it("names the roles in the marker: other role names are another set", () => {
    expect(privilegesMarker({ app: "plum_app", migrate: "plum_migrate" })).to.not.equal(privilegesMarker(dbs.roles));
    expect(privilegesMarker({ ...dbs.roles })).to.equal(privilegesMarker(dbs.roles));
  });
});
