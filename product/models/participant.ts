import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type Sequelize } from "sequelize";

export interface Participant extends Model<InferAttributes<Participant>, InferCreationAttributes<Participant>> {
  id: CreationOptional<number>;
  employeeId: string;
  name: string;
  email: string;
  department: CreationOptional<string>;
  managerEmployeeId: CreationOptional<string | null>;
  country: string;
  userId: CreationOptional<number | null>;
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
}

export function defineParticipant(sequelize: Sequelize) {
  return sequelize.define<Participant>(
    "Participant",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      employeeId: { type: DataTypes.TEXT, allowNull: false, unique: true },
      name: { type: DataTypes.TEXT, allowNull: false },
      email: { type: DataTypes.TEXT, allowNull: false, validate: { isEmail: true } },
      department: { type: DataTypes.TEXT, allowNull: false, defaultValue: "" },
      managerEmployeeId: { type: DataTypes.TEXT, allowNull: true },
      country: { type: DataTypes.CHAR(2), allowNull: false, validate: { is: /^[A-Z]{2}$/ } },
      userId: { type: DataTypes.INTEGER, allowNull: true, unique: true },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
    },
    { tableName: "participants", timestamps: true, underscored: true },
  );
}
