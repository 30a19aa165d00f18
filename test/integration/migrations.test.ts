import { expect } from "chai";
import pg from "pg";
import { OPS_MIGRATIONS_DIR, PRODUCT_MIGRATIONS_DIR, expectedSchemaVersion } from "../../lib/version.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { appliedSchemaVersion, migrate } from "../../lib/db/migrate.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";

async function tables(config: pg.ClientConfig): Promise<string[]> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    const { rows } = await client.query(
      "select table_name from information_schema.tables where table_schema = 'public' and table_name <> 'pgmigrations' order by 1",
    );
    return rows.map((r) => r.table_name);
  } finally {
    await client.end();
  }
}

describe("migrations: every one goes up and down", () => {
  let dbs: FreshDatabases;
  before(async () => (dbs = await freshDatabases()));
  after(() => dbs.drop());

  for (const [name, dir, db] of [
    ["plum", PRODUCT_MIGRATIONS_DIR, "product"],
    ["plum_ops", OPS_MIGRATIONS_DIR, "ops"],
  ] as const) {
    it(`${name}: up to the newest, all the way down to nothing, and up again`, async () => {
      const config = clientConfig(dbs.server, dbs[db]);
      const up = await migrate({ clientConfig: config, dir });
      expect(up.at(-1)).to.equal(expectedSchemaVersion(dir));
      const created = await tables(config);
      expect(created.length).to.be.greaterThan(2);
      const down = await migrate({ clientConfig: config, dir, direction: "down", count: Infinity });
      expect(down).to.deep.equal([...up].reverse());
      expect(await tables(config)).to.deep.equal([]);
      await migrate({ clientConfig: config, dir });
      expect(await tables(config)).to.deep.equal(created);
      const client = new pg.Client(config);
      await client.connect();
      expect(await appliedSchemaVersion(client)).to.equal(expectedSchemaVersion(dir));
      await client.end();
    });
  }
});
