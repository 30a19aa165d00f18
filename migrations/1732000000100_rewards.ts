import type { MigrationBuilder } from "node-pg-migrate";
import { createAuthTables, dropAuthTables } from "../lib/db/auth-tables.ts";

const PRODUCT_AUTH = {
  users: "product_users",
  sessions: "product_sessions",
  attempts: "product_login_attempts",
  roles: ["manager", "participant", "merchant"],
};

/**
 * The rewards platform: product users (managers, participants, merchant staff), programmes, participants,
 * the append-only points ledger, merchants and their catalogue, vouchers, and the product's event log.
 */
export async function up(pgm: MigrationBuilder): Promise<void> {
  createAuthTables(pgm, PRODUCT_AUTH);
  pgm.createTable("product_events", {
    id: { type: "bigserial", primaryKey: true },
    at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    actor: { type: "text", notNull: true },
    action: { type: "text", notNull: true },
    target: { type: "text" },
    outcome: { type: "text", notNull: true, default: "success" },
    detail: { type: "jsonb", notNull: true, default: "{}" },
  });

  pgm.createTable("programmes", {
    id: "id",
    name: { type: "text", notNull: true, unique: true },
    kind: { type: "text", notNull: true, check: "kind in ('recognition', 'sales_incentive', 'loyalty')" },
    description: { type: "text", notNull: true, default: "" },
    currency: { type: "char(3)", notNull: true, default: "EUR" },
    status: { type: "text", notNull: true, default: "active", check: "status in ('active', 'archived')" },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });

  pgm.createTable("participants", {
    id: "id",
    employee_id: { type: "text", notNull: true, unique: true },
    name: { type: "text", notNull: true },
    email: { type: "text", notNull: true },
    department: { type: "text", notNull: true, default: "" },
    manager_employee_id: { type: "text" },
    country: { type: "char(2)", notNull: true },
    user_id: { type: "integer", unique: true, references: "product_users", onDelete: "SET NULL" },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createIndex("participants", "email");

  pgm.createTable("merchants", {
    id: "id",
    name: { type: "text", notNull: true, unique: true },
    contact_email: { type: "text", notNull: true, default: "" },
    api_key_hash: { type: "text", unique: true }, // sha256 of the key; the key is shown once
    api_key_prefix: { type: "text" },
    disabled_at: { type: "timestamptz" },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createTable("merchant_users", {
    user_id: { type: "integer", primaryKey: true, references: "product_users", onDelete: "CASCADE" },
    merchant_id: { type: "integer", notNull: true, references: "merchants", onDelete: "CASCADE" },
  });

  pgm.createTable("catalogue_items", {
    id: "id",
    merchant_id: { type: "integer", notNull: true, references: "merchants" },
    name: { type: "text", notNull: true },
    description: { type: "text", notNull: true, default: "" },
    points_cost: { type: "integer", notNull: true, check: "points_cost > 0" },
    stock: { type: "integer", notNull: true, check: "stock >= 0" },
    active: { type: "boolean", notNull: true, default: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createIndex("catalogue_items", "merchant_id");

  pgm.createTable("vouchers", {
    id: "id",
    participant_id: { type: "integer", notNull: true, references: "participants" },
    item_id: { type: "integer", notNull: true, references: "catalogue_items" },
    merchant_id: { type: "integer", notNull: true, references: "merchants" },
    points_cost: { type: "integer", notNull: true, check: "points_cost > 0" },
    code: { type: "text", notNull: true, unique: true }, // typed or scanned at the till
    share_token: { type: "text", notNull: true, unique: true }, // the unguessable part of the shareable URL
    status: { type: "text", notNull: true, default: "issued", check: "status in ('issued', 'redeemed', 'cancelled')" },
    issued_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    expires_at: { type: "timestamptz", notNull: true },
    redeemed_at: { type: "timestamptz" },
    redeemed_by_merchant_id: { type: "integer", references: "merchants" },
  });
  pgm.createIndex("vouchers", "participant_id");

  pgm.createTable("ledger_entries", {
    id: { type: "bigserial", primaryKey: true },
    participant_id: { type: "integer", notNull: true, references: "participants" },
    programme_id: { type: "integer", references: "programmes" },
    kind: { type: "text", notNull: true, check: "kind in ('award', 'adjustment', 'redemption', 'reversal')" },
    points: { type: "integer", notNull: true },
    idempotency_key: { type: "text", notNull: true, unique: true },
    voucher_id: { type: "integer", references: "vouchers" },
    note: { type: "text", notNull: true, default: "" },
    created_by: { type: "text", notNull: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.addConstraint("ledger_entries", "ledger_entries_sign", {
    check: "points <> 0 and (kind not in ('award', 'reversal') or points > 0) and (kind <> 'redemption' or points < 0)",
  });
  pgm.createIndex("ledger_entries", "participant_id");
  // The ledger is append-only: corrections are new entries (adjustment, reversal), never edits.
  // A balance never goes below zero: checked at commit for every participant an insert touched.
  pgm.sql(`
    create function ledger_entries_append_only() returns trigger language plpgsql as $$
    begin
      -- The one sanctioned exception: validation suites removing the rows they made themselves,
      -- with SET LOCAL plum.ledger_cleanup = 'on' inside their own transaction.
      if tg_op = 'DELETE' and current_setting('plum.ledger_cleanup', true) = 'on' then
        return old;
      end if;
      raise exception 'ledger_entries is append-only (% refused): add an adjustment or a reversal instead', tg_op;
    end $$;
    create trigger ledger_entries_append_only before update or delete on ledger_entries
      for each row execute function ledger_entries_append_only();

    create function ledger_entries_balance_check() returns trigger language plpgsql as $$
    declare balance bigint;
    begin
      select coalesce(sum(points), 0) into balance from ledger_entries where participant_id = new.participant_id;
      if balance < 0 then
        raise exception 'balance of participant % would be % points: balances never go below zero', new.participant_id, balance
          using errcode = 'check_violation';
      end if;
      return null;
    end $$;
    create constraint trigger ledger_entries_balance_check after insert on ledger_entries
      deferrable initially deferred for each row execute function ledger_entries_balance_check();
  `);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.sql(`
    drop trigger if exists ledger_entries_balance_check on ledger_entries;
    drop trigger if exists ledger_entries_append_only on ledger_entries;
    drop function if exists ledger_entries_balance_check();
    drop function if exists ledger_entries_append_only();
  `);
  for (const table of ["ledger_entries", "vouchers", "catalogue_items", "merchant_users", "merchants", "participants", "programmes", "product_events"]) {
    pgm.dropTable(table);
  }
  dropAuthTables(pgm, PRODUCT_AUTH);
}
