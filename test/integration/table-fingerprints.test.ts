import { expect } from "chai";
import pg from "pg";
import { clientConfig } from "../../lib/db/database.ts";
import { rowDifferences } from "../../lib/db/row-differences.ts";
import { fingerprintDatabase, fingerprintInTransaction, type DatabaseFingerprint } from "../../lib/db/table-fingerprints.ts";
import { freshDatabases, testServer, type FreshDatabases } from "../support/databases.ts";

/** Content fingerprints and row-by-row differences on the real PostgreSQL of the test run. */
describe("table fingerprints and row differences (real PostgreSQL)", function () {
  this.timeout(60_000);
  let dbs: FreshDatabases;
  let copy: string;
  let client: pg.Client;
  const server = testServer();

  const admin = async (sql: string) => {
    const c = new pg.Client(clientConfig(server, "postgres"));
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  const fingerprint = async (database = dbs.product) => (await fingerprintDatabase(server, database)).fingerprint;
  const columnsThatDiffer = (a: DatabaseFingerprint, b: DatabaseFingerprint) =>
    Object.keys(a.tables).flatMap((t) =>
      Object.keys(a.tables[t].columns)
        .filter((c) => JSON.stringify(a.tables[t].columns[c]) !== JSON.stringify(b.tables[t]?.columns[c]))
        .map((c) => `${t}.${c}`),
    );

  before(async () => {
    dbs = await freshDatabases({ migrated: true });
    client = new pg.Client(clientConfig(server, dbs.product));
    await client.connect();
    await client.query(
      `insert into programmes (name, kind, description) select 'Programme ' || g, 'recognition', 'about ' || g from generate_series(1, 5000) g`,
    );
    await client.query(`insert into settings (key, value) values ('b', '"2"'), ('a', '"1"'), ('Ä', '"3"'), ('z', '"4"'), (repeat('k', 40), '"5"')`);
    await client.query("create table audit_notes (at timestamptz not null, note text)");
    await client.query("insert into audit_notes values ('2025-01-01T10:00:00Z', 'one'), ('2025-01-02T10:00:00Z', 'two')");
    await client.end(); // a template has no one connected to it
    copy = `${dbs.product}_copy`;
    await admin(`create database ${copy} template ${dbs.product}`);
    client = new pg.Client(clientConfig(server, dbs.product));
    await client.connect();
  });
  after(async () => {
    await client?.end();
    await admin(`drop database if exists ${copy} with (force)`);
    await dbs?.drop();
  });

  it("fingerprints every product table but pgmigrations: rows, keyed column hashes, equal for an equal copy", async () => {
    const f = await fingerprint();
    expect(Object.keys(f.tables)).to.include.members(["programmes", "settings", "audit_notes", "ledger_entries"]).and.not.include("pgmigrations");
    expect(f.tables.programmes).to.deep.include({ rows: 5000, key: ["id"] });
    expect(f.tables.programmes.columns.description.values).to.equal(5000);
    expect(f.tables.settings.key).to.deep.equal(["key"]);
    expect(f.tables.audit_notes.key).to.deep.equal([]);
    expect(f.tables.audit_notes.unkeyed).to.match(/^-?\d+$/);
    expect(f.tables.ledger_entries).to.deep.include({ rows: 0 });
    expect(await fingerprint(copy)).to.deep.equal(f);
  });

  it("does not depend on the session's time zone or date style (the settings are fixed for the transaction)", async () => {
    const expected = await fingerprint();
    const c = new pg.Client(clientConfig(server, dbs.product));
    await c.connect();
    try {
      await c.query("set timezone = 'Asia/Tokyo'; set datestyle = 'German'; set extra_float_digits = 0");
      await c.query("begin isolation level repeatable read, read only");
      expect(await fingerprintInTransaction(c)).to.deep.equal(expected);
      await c.query("commit");
      expect((await c.query("show timezone")).rows[0].TimeZone, "SET LOCAL ended with the transaction").to.equal("Asia/Tokyo");
    } finally {
      await c.end();
    }
  });

  it("a changed value changes its column only; two values swapped between rows change it too, counts unchanged", async () => {
    const before = await fingerprint();
    await client.query("update programmes set description = 'changed' where id = 17");
    const changed = await fingerprint();
    expect(columnsThatDiffer(before, changed)).to.deep.equal(["programmes.description"]);
    expect(changed.tables.programmes.rows).to.equal(5000);
    expect(changed.tables.programmes.hash).to.not.equal(before.tables.programmes.hash);
    await client.query("update programmes set description = 'about 17' where id = 17");
    expect(await fingerprint()).to.deep.equal(before);

    await client.query("update programmes p set description = q.description from programmes q where (p.id = 10 and q.id = 20) or (p.id = 20 and q.id = 10)");
    const swapped = await fingerprint();
    expect(columnsThatDiffer(before, swapped)).to.deep.equal(["programmes.description"]);
    expect(swapped.tables.programmes.columns.description.values).to.equal(5000);
    await client.query("update programmes p set description = q.description from programmes q where (p.id = 10 and q.id = 20) or (p.id = 20 and q.id = 10)");

    await client.query("update audit_notes set note = case note when 'one' then 'two' else 'one' end");
    const unkeyed = await fingerprint();
    expect(columnsThatDiffer(before, unkeyed), "unkeyed sums cannot see a swap").to.deep.equal([]);
    expect(unkeyed.tables.audit_notes.unkeyed).to.not.equal(before.tables.audit_notes.unkeyed);
    await client.query("update audit_notes set note = case note when 'one' then 'two' else 'one' end");
    expect(await fingerprint()).to.deep.equal(before);
  });

  it("lists rows deleted, inserted and changed per column, by key, streaming through batches (integer and text keys)", async () => {
    await client.query("delete from programmes where id in (3, 2500, 4999)");
    await client.query("update programmes set name = upper(name) where id in (7, 4000)");
    await client.query("update programmes set description = 'x' where id = 4000");
    await client.query("insert into programmes (name, kind) values ('late', 'loyalty')");
    await client.query(`update settings set value = '"9"' where key in ('Ä', repeat('k', 40))`);
    await client.query("delete from settings where key = 'a'");
    await client.query(`insert into settings (key, value) values ('m', '"5"')`);
    const before = new pg.Client(clientConfig(server, copy));
    await before.connect();
    try {
      const programmes = { table: "programmes", key: ["id"], columns: ["name", "description", "kind"] };
      const d = await rowDifferences({ before, after: client, beforeTable: programmes, afterTable: programmes, examples: 2 });
      expect(d.deleted).to.deep.equal({ rows: 3, examples: ["id=3", "id=2500"] });
      expect(d.inserted).to.deep.equal({ rows: 1, examples: ["id=5001"] });
      expect(d.changed).to.deep.equal({
        name: { rows: 2, examples: ["id=7", "id=4000"] },
        description: { rows: 1, examples: ["id=4000"] },
        kind: { rows: 0, examples: [] },
      });
      expect(d.compared).to.equal(4997);

      const settings = { table: "settings", key: ["key"], columns: ["value"] };
      const s = await rowDifferences({ before, after: client, beforeTable: settings, afterTable: settings });
      // Byte order (collate "C") on both sides; a long key (a token's hash, say) is shortened in the examples.
      expect(s).to.deep.equal({
        compared: 4,
        deleted: { rows: 1, examples: ["key=a"] },
        inserted: { rows: 1, examples: ["key=m"] },
        changed: { value: { rows: 2, examples: ["key=kkkkkkkkkkkk…", "key=Ä"] } },
      });
      // The cursors' transactions are over: both clients are free again.
      expect((await before.query("select count(*)::int as n from programmes")).rows[0].n).to.equal(5000);
    } finally {
      await before.end();
    }
  });
});
