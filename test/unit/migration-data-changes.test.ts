import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { migrationDataChanges, releaseDataChanges } from "../../appliance/releases/migration-data-changes.ts";
import { readSql, splitStatements } from "../../appliance/releases/sql-data-changes.ts";
import { PRODUCT_MIGRATIONS_DIR } from "../../lib/version.ts";

describe("data-change declarations derived from migrations", () => {
  it("splits SQL at top-level semicolons only (quotes, dollar bodies and comments kept whole)", () => {
    expect(
      splitStatements(`select 'a;b'; -- c; d
        create function f() returns int language sql as $body$ select 1; $body$;/* x; */ update "t;" set a = 1`),
    ).to.deep.equal(["select 'a;b'", "create function f() returns int language sql as $body$ select 1; $body$", 'update "t;" set a = 1']);
  });

  it("reads the statements that change data, passes over those that change none, and lists the rest as unread", () => {
    const read = readSql(`
      create table release_notes (id serial primary key, body text not null);
      create temp table scratch (x int);
      alter table vouchers add column channel text not null default 'web', add constraint channel_set check (channel <> '');
      alter table vouchers alter column channel drop default, alter column points_cost type bigint;
      alter table public.participants rename column email to mail;
      alter table programmes rename to schemes;
      update payouts p set amount_minor = round(amount_minor / 100) * 100, ("Note", status) = ('x', 'y') where p.id > 3;
      delete from only merchant_users where merchant_id = 1;
      insert into settings (key, value) values ('a', '1') on conflict (key) do update set value = excluded.value;
      truncate table product_sessions, product_login_attempts restart identity;
      drop table if exists badges, public.gift_cards cascade;
      update audit.events set x = 1;
      create unique index on vouchers (channel);
      create or replace function f() returns trigger language plpgsql as $$ begin delete from x; return new; end $$;
      comment on column vouchers.channel is 'where; it was issued';
      select setval('vouchers_id_seq', 10);
      do $$ begin update ledger_entries set points = 0; end $$;
      select recalculate_balances();
    `);
    expect(read.changes).to.deep.equal([
      { change: "table-added", table: "release_notes" },
      { change: "column-added", table: "vouchers", column: "channel" },
      { change: "column-rewritten", table: "vouchers", column: "points_cost" },
      { change: "column-renamed", table: "participants", column: "email", to: "mail" },
      { change: "table-renamed", table: "programmes", to: "schemes" },
      { change: "column-rewritten", table: "payouts", column: "amount_minor" },
      { change: "column-rewritten", table: "payouts", column: "Note" },
      { change: "column-rewritten", table: "payouts", column: "status" },
      { change: "rows-deleted", table: "merchant_users" },
      { change: "rows-inserted", table: "settings" },
      { change: "column-rewritten", table: "settings", column: "value" },
      { change: "rows-deleted", table: "product_sessions" },
      { change: "rows-deleted", table: "product_login_attempts" },
      { change: "table-dropped", table: "badges" },
      { change: "table-dropped", table: "gift_cards" },
    ]);
    expect(read.unread).to.deep.equal(["do $$ begin update ledger_entries set points = 0; end $$", "select recalculate_balances()"]);
  });

  it("follows a migration's up on a recording builder: tables and columns it makes, drops and renames, plus what it states", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "plum-migration-test-"));
    try {
      const file = path.join(dir, "1732000000900_gift-cards.ts");
      writeFileSync(
        file,
        `export async function up(pgm: any) {
          pgm.createTable("gift_cards", { id: "id", code: { type: "text", default: pgm.func("gen_random_uuid()") } });
          pgm.addColumns("vouchers", { gift_card_id: { type: "integer" } });
          pgm.dropColumns({ schema: "public", name: "participants" }, ["nickname"]);
          pgm.renameColumn("merchants", "contact_email", "email");
          pgm.alterColumn("vouchers", "points_cost", { type: "bigint" });
          pgm.alterColumn("vouchers", "status", { default: "issued" });
          pgm.createIndex("vouchers", "gift_card_id");
          pgm.createTable({ schema: "audit", name: "gift_events" }, {});
          pgm.sql("update vouchers set status = 'issued' where status is null");
          await pgm.db.query("update merchants set disabled_at = now()");
        }
        export const dataChanges = [
          { change: "column-rewritten", table: "vouchers", column: "status", note: "null statuses become issued" },
          { change: "rows-inserted", table: "gift_cards", note: "one card per open voucher" },
        ];`,
      );
      expect(await migrationDataChanges(file)).to.deep.equal({
        changes: [
          { change: "table-added", table: "gift_cards", source: "derived" },
          { change: "column-added", table: "vouchers", column: "gift_card_id", source: "derived" },
          { change: "column-dropped", table: "participants", column: "nickname", source: "derived" },
          { change: "column-renamed", table: "merchants", column: "contact_email", to: "email", source: "derived" },
          { change: "column-rewritten", table: "vouchers", column: "points_cost", source: "derived" },
          { change: "column-rewritten", table: "vouchers", column: "status", note: "null statuses become issued", source: "stated" },
          { change: "rows-inserted", table: "gift_cards", note: "one card per open voucher", source: "stated" },
        ],
        unread: ["pgm.db: the migration queries the database itself"],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("declares this tree's own migrations fully: every table they create, nothing unread", async () => {
    const declared = await releaseDataChanges(PRODUCT_MIGRATIONS_DIR);
    expect(Object.values(declared).flatMap((d) => d.unread ?? [])).to.deep.equal([]);
    expect(declared["1732000000200_payouts"].changes.map((c) => c.table)).to.deep.equal(["payout_rules", "sales_records", "payout_runs", "payouts"]);
  });
});
