import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type Sequelize } from "sequelize";
import type { PayoutBreakdown, PayoutTier } from "../payouts/payout-calculator.ts";

/** Sequelize reads PostgreSQL bigint as a decimal string; code turns it into a bigint with BigInt(). */
type BigintString = string;

export const PERIOD_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;

export interface PayoutRule extends Model<InferAttributes<PayoutRule>, InferCreationAttributes<PayoutRule>> {
  id: CreationOptional<number>;
  programmeId: number;
  /** The first period ('YYYY-MM') this rule applies to; it applies until a rule with a later period takes over. */
  effectiveFrom: string;
  tiers: PayoutTier[];
  acceleratorBp: number;
  capMinor: BigintString;
  updatedBy: string;
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
}

export interface SalesRecord extends Model<InferAttributes<SalesRecord>, InferCreationAttributes<SalesRecord>> {
  id: CreationOptional<number>;
  programmeId: number;
  participantId: number;
  period: string;
  quotaMinor: BigintString;
  salesMinor: BigintString;
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
}

export const PAYOUT_RUN_STATUSES = ["computed", "approved", "exported"] as const;
export type PayoutRunStatus = (typeof PAYOUT_RUN_STATUSES)[number];

export interface PayoutRun extends Model<InferAttributes<PayoutRun>, InferCreationAttributes<PayoutRun>> {
  id: CreationOptional<number>;
  programmeId: number;
  period: string;
  ruleId: number;
  status: CreationOptional<PayoutRunStatus>;
  computedBy: string;
  computedAt: CreationOptional<Date>;
  approvedBy: CreationOptional<string | null>;
  approvedAt: CreationOptional<Date | null>;
  exportedAt: CreationOptional<Date | null>;
}

export interface Payout extends Model<InferAttributes<Payout>, InferCreationAttributes<Payout>> {
  id: CreationOptional<number>;
  runId: number;
  participantId: number;
  attainmentBp: BigintString;
  amountMinor: BigintString;
  detail: PayoutBreakdown;
}

// A fresh object each time: Sequelize writes the column name into the attribute definition it is given.
const period = () => ({ type: DataTypes.TEXT, allowNull: false, validate: { is: PERIOD_PATTERN } });

function define(sequelize: Sequelize) {
  const PayoutRule = sequelize.define<PayoutRule>(
    "PayoutRule",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      programmeId: { type: DataTypes.INTEGER, allowNull: false },
      effectiveFrom: period(),
      tiers: { type: DataTypes.JSONB, allowNull: false },
      acceleratorBp: { type: DataTypes.INTEGER, allowNull: false },
      capMinor: { type: DataTypes.BIGINT, allowNull: false },
      updatedBy: { type: DataTypes.TEXT, allowNull: false },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
    },
    { tableName: "payout_rules", timestamps: true, underscored: true },
  );
  const SalesRecord = sequelize.define<SalesRecord>(
    "SalesRecord",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      programmeId: { type: DataTypes.INTEGER, allowNull: false },
      participantId: { type: DataTypes.INTEGER, allowNull: false },
      period: period(),
      quotaMinor: { type: DataTypes.BIGINT, allowNull: false },
      salesMinor: { type: DataTypes.BIGINT, allowNull: false },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
    },
    { tableName: "sales_records", timestamps: true, underscored: true },
  );
  const PayoutRun = sequelize.define<PayoutRun>(
    "PayoutRun",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      programmeId: { type: DataTypes.INTEGER, allowNull: false },
      period: period(),
      ruleId: { type: DataTypes.INTEGER, allowNull: false },
      status: { type: DataTypes.TEXT, allowNull: false, defaultValue: "computed", validate: { isIn: [PAYOUT_RUN_STATUSES as unknown as string[]] } },
      computedBy: { type: DataTypes.TEXT, allowNull: false },
      computedAt: { type: DataTypes.DATE, allowNull: false, defaultValue: DataTypes.NOW },
      approvedBy: { type: DataTypes.TEXT, allowNull: true },
      approvedAt: { type: DataTypes.DATE, allowNull: true },
      exportedAt: { type: DataTypes.DATE, allowNull: true },
    },
    { tableName: "payout_runs", timestamps: false, underscored: true },
  );
  const Payout = sequelize.define<Payout>(
    "Payout",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      runId: { type: DataTypes.INTEGER, allowNull: false },
      participantId: { type: DataTypes.INTEGER, allowNull: false },
      attainmentBp: { type: DataTypes.BIGINT, allowNull: false },
      amountMinor: { type: DataTypes.BIGINT, allowNull: false },
      detail: { type: DataTypes.JSONB, allowNull: false },
    },
    { tableName: "payouts", timestamps: false, underscored: true },
  );
  return { PayoutRule, SalesRecord, PayoutRun, Payout };
}

export type PayoutModels = ReturnType<typeof define>;

const defined = new WeakMap<Sequelize, PayoutModels>();

/** The payout models of one Sequelize instance: defined on first use, the same objects afterwards. */
export function definePayoutModels(sequelize: Sequelize): PayoutModels {
  let models = defined.get(sequelize);
  if (!models) {
    models = define(sequelize);
    defined.set(sequelize, models);
  }
  return models;
}
