import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type Sequelize } from "sequelize";

export interface Merchant extends Model<InferAttributes<Merchant>, InferCreationAttributes<Merchant>> {
  id: CreationOptional<number>;
  name: string;
  contactEmail: CreationOptional<string>;
  apiKeyHash: CreationOptional<string | null>;
  apiKeyPrefix: CreationOptional<string | null>;
  disabledAt: CreationOptional<Date | null>;
  createdAt: CreationOptional<Date>;
}

/** Which merchant a product user of role "merchant" works for. */
export interface MerchantUser extends Model<InferAttributes<MerchantUser>, InferCreationAttributes<MerchantUser>> {
  userId: number;
  merchantId: number;
}

export function defineMerchant(sequelize: Sequelize) {
  const Merchant = sequelize.define<Merchant>(
    "Merchant",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      name: { type: DataTypes.TEXT, allowNull: false, unique: true, validate: { len: [2, 120] } },
      contactEmail: { type: DataTypes.TEXT, allowNull: false, defaultValue: "" },
      apiKeyHash: { type: DataTypes.TEXT, allowNull: true, unique: true },
      apiKeyPrefix: { type: DataTypes.TEXT, allowNull: true },
      disabledAt: { type: DataTypes.DATE, allowNull: true },
      createdAt: { type: DataTypes.DATE, defaultValue: DataTypes.NOW },
    },
    { tableName: "merchants", timestamps: false, underscored: true },
  );
  const MerchantUser = sequelize.define<MerchantUser>(
    "MerchantUser",
    {
      userId: { type: DataTypes.INTEGER, primaryKey: true },
      merchantId: { type: DataTypes.INTEGER, allowNull: false },
    },
    { tableName: "merchant_users", timestamps: false, underscored: true },
  );
  return { Merchant, MerchantUser };
}
