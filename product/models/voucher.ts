import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type Sequelize } from "sequelize";

export type VoucherStatus = "issued" | "redeemed" | "cancelled";

export interface Voucher extends Model<InferAttributes<Voucher>, InferCreationAttributes<Voucher>> {
  id: CreationOptional<number>;
  participantId: number;
  itemId: number;
  merchantId: number;
  pointsCost: number;
  code: string;
  shareToken: string;
  status: CreationOptional<VoucherStatus>;
  issuedAt: CreationOptional<Date>;
  expiresAt: Date;
  redeemedAt: CreationOptional<Date | null>;
  redeemedByMerchantId: CreationOptional<number | null>;
}

export function defineVoucher(sequelize: Sequelize) {
  return sequelize.define<Voucher>(
    "Voucher",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      participantId: { type: DataTypes.INTEGER, allowNull: false },
      itemId: { type: DataTypes.INTEGER, allowNull: false },
      merchantId: { type: DataTypes.INTEGER, allowNull: false },
      pointsCost: { type: DataTypes.INTEGER, allowNull: false },
      code: { type: DataTypes.TEXT, allowNull: false, unique: true },
      shareToken: { type: DataTypes.TEXT, allowNull: false, unique: true },
      status: { type: DataTypes.TEXT, allowNull: false, defaultValue: "issued", validate: { isIn: [["issued", "redeemed", "cancelled"]] } },
      issuedAt: { type: DataTypes.DATE, defaultValue: DataTypes.NOW },
      expiresAt: { type: DataTypes.DATE, allowNull: false },
      redeemedAt: { type: DataTypes.DATE, allowNull: true },
      redeemedByMerchantId: { type: DataTypes.INTEGER, allowNull: true },
    },
    { tableName: "vouchers", timestamps: false, underscored: true },
  );
}
