import type { MigrationBuilder } from "node-pg-migrate";

const PERIOD = "'^[0-9]{4}-(0[1-9]|1[0-2])$'";

/**
 * Sales-incentive payouts: the payout rule of a programme (tiers, accelerator, cap; each rule applies from its
 * period until a later one takes over), the sales and quota of each participant per period, the payout runs of a
 * programme's period and their payouts. Money is integer minor units (bigint) throughout.
 */
export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable("payout_rules", {
    id: "id",
    programme_id: { type: "integer", notNull: true, references: "programmes" },
    effective_from: { type: "text", notNull: true, check: `effective_from ~ ${PERIOD}` },
    // [{ "fromAttainmentBp": 8000, "rateBp": 400 }, …] ascending; checked in full by the rule saver and the validation suite.
    tiers: { type: "jsonb", notNull: true, check: "jsonb_typeof(tiers) = 'array' and jsonb_array_length(tiers) > 0" },
    accelerator_bp: { type: "integer", notNull: true, default: 10000, check: "accelerator_bp >= 10000" },
    cap_minor: { type: "bigint", notNull: true, check: "cap_minor > 0" },
    updated_by: { type: "text", notNull: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.addConstraint("payout_rules", "payout_rules_programme_period", { unique: ["programme_id", "effective_from"] });

  pgm.createTable("sales_records", {
    id: "id",
    programme_id: { type: "integer", notNull: true, references: "programmes" },
    participant_id: { type: "integer", notNull: true, references: "participants" },
    period: { type: "text", notNull: true, check: `period ~ ${PERIOD}` },
    quota_minor: { type: "bigint", notNull: true, check: "quota_minor > 0" },
    sales_minor: { type: "bigint", notNull: true, check: "sales_minor >= 0" },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    updated_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.addConstraint("sales_records", "sales_records_programme_participant_period", { unique: ["programme_id", "participant_id", "period"] });
  pgm.createIndex("sales_records", ["programme_id", "period"]);

  pgm.createTable("payout_runs", {
    id: "id",
    programme_id: { type: "integer", notNull: true, references: "programmes" },
    period: { type: "text", notNull: true, check: `period ~ ${PERIOD}` },
    rule_id: { type: "integer", notNull: true, references: "payout_rules" },
    status: { type: "text", notNull: true, default: "computed", check: "status in ('computed', 'approved', 'exported')" },
    computed_by: { type: "text", notNull: true },
    computed_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
    approved_by: { type: "text" },
    approved_at: { type: "timestamptz" },
    exported_at: { type: "timestamptz" },
  });
  pgm.addConstraint("payout_runs", "payout_runs_programme_period", { unique: ["programme_id", "period"] });
  pgm.addConstraint("payout_runs", "payout_runs_approval", {
    check:
      "(status = 'computed') = (approved_at is null) and (approved_at is null) = (approved_by is null) and (status = 'exported') = (exported_at is not null)",
  });

  pgm.createTable("payouts", {
    id: "id",
    run_id: { type: "integer", notNull: true, references: "payout_runs", onDelete: "CASCADE" },
    participant_id: { type: "integer", notNull: true, references: "participants" },
    attainment_bp: { type: "bigint", notNull: true, check: "attainment_bp >= 0" },
    amount_minor: { type: "bigint", notNull: true, check: "amount_minor >= 0" },
    detail: { type: "jsonb", notNull: true }, // the calculator's breakdown: tier, accelerator, cap, rounding
  });
  pgm.addConstraint("payouts", "payouts_run_participant", { unique: ["run_id", "participant_id"] });

  // An approved run is frozen in the database too: its payouts cannot change, and the run can only move on to exported.
  pgm.sql(`
    create function payouts_frozen() returns trigger language plpgsql as $$
    declare run_status text;
    begin
      select status into run_status from payout_runs where id = coalesce(new.run_id, old.run_id);
      if run_status in ('approved', 'exported') then
        raise exception 'payout run % is %: its payouts are frozen (% refused)', coalesce(new.run_id, old.run_id), run_status, tg_op;
      end if;
      return coalesce(new, old);
    end $$;
    create trigger payouts_frozen before insert or update or delete on payouts
      for each row execute function payouts_frozen();

    create function payout_runs_frozen() returns trigger language plpgsql as $$
    begin
      if old.status = 'computed' then
        return coalesce(new, old);
      end if;
      if tg_op = 'UPDATE' and new.status = 'exported'
         and (new.id, new.programme_id, new.period, new.rule_id, new.computed_by, new.computed_at, new.approved_by, new.approved_at)
             is not distinct from (old.id, old.programme_id, old.period, old.rule_id, old.computed_by, old.computed_at, old.approved_by, old.approved_at) then
        return new;
      end if;
      raise exception 'payout run % is %: it is frozen (% refused)', old.id, old.status, tg_op;
    end $$;
    create trigger payout_runs_frozen before update or delete on payout_runs
      for each row execute function payout_runs_frozen();
  `);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.sql(`
    drop trigger if exists payouts_frozen on payouts;
    drop trigger if exists payout_runs_frozen on payout_runs;
    drop function if exists payouts_frozen();
    drop function if exists payout_runs_frozen();
  `);
  for (const table of ["payouts", "payout_runs", "sales_records", "payout_rules"]) pgm.dropTable(table);
}
