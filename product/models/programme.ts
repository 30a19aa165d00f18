import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type Sequelize } from "sequelize";

export const PROGRAMME_KINDS = ["recognition", "sales_incentive", "loyalty"] as const;
export type ProgrammeKind = (typeof PROGRAMME_KINDS)[number];

export interface Programme extends Model<InferAttributes<Programme>, InferCreationAttributes<Programme>> {
  id: CreationOptional<number>;
  name: string;
  kind: ProgrammeKind;
  description: CreationOptional<string>;
  currency: CreationOptional<string>;
  status: CreationOptional<"active" | "archived">;
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
}

export function defineProgramme(sequelize: Sequelize) {
  return sequelize.define<Programme>(
    "Programme",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      name: { type: DataTypes.TEXT, allowNull: false, unique: true, validate: { len: [2, 120] } },
      kind: { type: DataTypes.TEXT, allowNull: false, validate: { isIn: [PROGRAMME_KINDS as unknown as string[]] } },
      description: { type: DataTypes.TEXT, allowNull: false, defaultValue: "", validate: { len: [0, 2000] } },
      currency: { type: DataTypes.CHAR(3), allowNull: false, defaultValue: "EUR", validate: { is: /^[A-Z]{3}$/ } },
      status: { type: DataTypes.TEXT, allowNull: false, defaultValue: "active", validate: { isIn: [["active", "archived"]] } },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
    },
    { tableName: "programmes", timestamps: true, underscored: true },
  );
}
