import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type Sequelize } from "sequelize";

export const LEDGER_KINDS = ["award", "adjustment", "redemption", "reversal"] as const;
export type LedgerKind = (typeof LEDGER_KINDS)[number];

/** One append-only ledger entry; a balance is the sum of a participant's entries. */
export interface LedgerEntry extends Model<InferAttributes<LedgerEntry>, InferCreationAttributes<LedgerEntry>> {
  id: CreationOptional<string>; // bigint
  participantId: number;
  programmeId: number | null;
  kind: LedgerKind;
  points: number;
  idempotencyKey: string;
  voucherId: CreationOptional<number | null>;
  note: CreationOptional<string>;
  createdBy: string;
  createdAt: CreationOptional<Date>;
}

export function defineLedgerEntry(sequelize: Sequelize) {
  return sequelize.define<LedgerEntry>(
    "LedgerEntry",
    {
      id: { type: DataTypes.BIGINT, primaryKey: true, autoIncrement: true },
      participantId: { type: DataTypes.INTEGER, allowNull: false },
      programmeId: { type: DataTypes.INTEGER, allowNull: true },
      kind: { type: DataTypes.TEXT, allowNull: false, validate: { isIn: [LEDGER_KINDS as unknown as string[]] } },
      points: {
        type: DataTypes.INTEGER,
        allowNull: false,
        validate: {
          notZero: (v: number) => {
            if (v === 0) throw new Error("points must not be 0");
          },
        },
      },
      idempotencyKey: { type: DataTypes.TEXT, allowNull: false, unique: true },
      voucherId: { type: DataTypes.INTEGER, allowNull: true },
      note: { type: DataTypes.TEXT, allowNull: false, defaultValue: "" },
      createdBy: { type: DataTypes.TEXT, allowNull: false },
      createdAt: { type: DataTypes.DATE, defaultValue: DataTypes.NOW },
    },
    { tableName: "ledger_entries", timestamps: false, underscored: true },
  );
}
