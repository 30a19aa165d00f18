import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type Sequelize } from "sequelize";

export interface CatalogueItem extends Model<InferAttributes<CatalogueItem>, InferCreationAttributes<CatalogueItem>> {
  id: CreationOptional<number>;
  merchantId: number;
  name: string;
  description: CreationOptional<string>;
  pointsCost: number;
  stock: number;
  active: CreationOptional<boolean>;
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
}

export function defineCatalogueItem(sequelize: Sequelize) {
  return sequelize.define<CatalogueItem>(
    "CatalogueItem",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      merchantId: { type: DataTypes.INTEGER, allowNull: false },
      name: { type: DataTypes.TEXT, allowNull: false, validate: { len: [2, 120] } },
      description: { type: DataTypes.TEXT, allowNull: false, defaultValue: "" },
      pointsCost: { type: DataTypes.INTEGER, allowNull: false, validate: { min: 1 } },
      stock: { type: DataTypes.INTEGER, allowNull: false, validate: { min: 0 } },
      active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
    },
    { tableName: "catalogue_items", timestamps: true, underscored: true },
  );
}
