import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type ModelStatic, type Sequelize } from "sequelize";

export const ROLES = ["admin", "operator", "auditor"] as const;
export type Role = (typeof ROLES)[number];

export interface OpsUser extends Model<InferAttributes<OpsUser>, InferCreationAttributes<OpsUser>> {
  id: CreationOptional<number>;
  username: string;
  role: Role;
  passwordHash: string;
  mustChangePassword: CreationOptional<boolean>;
  lockedUntil: CreationOptional<Date | null>;
  disabledAt: CreationOptional<Date | null>;
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
}

export interface OpsSession extends Model<InferAttributes<OpsSession>, InferCreationAttributes<OpsSession>> {
  id: string;
  userId: number;
  csrfSecret: string;
  createdAt: CreationOptional<Date>;
  expiresAt: Date;
  ip: string | null;
  userAgent: string | null;
}

export interface LoginAttempt extends Model<InferAttributes<LoginAttempt>, InferCreationAttributes<LoginAttempt>> {
  id: CreationOptional<number>;
  username: string;
  ip: string | null;
  succeeded: boolean;
  at: CreationOptional<Date>;
}

export interface OpsModels {
  OpsUser: ModelStatic<OpsUser>;
  OpsSession: ModelStatic<OpsSession>;
  LoginAttempt: ModelStatic<LoginAttempt>;
}

/** The console's tables in plum_ops (created by migrations/ops): columns and validators only. */
export function defineOpsModels(sequelize: Sequelize): OpsModels {
  const OpsUser = sequelize.define<OpsUser>(
    "OpsUser",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      username: { type: DataTypes.TEXT, allowNull: false, unique: true, validate: { is: /^[a-z0-9][a-z0-9._-]{1,62}$/ } },
      role: { type: DataTypes.TEXT, allowNull: false, validate: { isIn: [ROLES as unknown as string[]] } },
      passwordHash: { type: DataTypes.TEXT, allowNull: false },
      mustChangePassword: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      lockedUntil: { type: DataTypes.DATE, allowNull: true },
      disabledAt: { type: DataTypes.DATE, allowNull: true },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
    },
    { tableName: "ops_users", timestamps: true, underscored: true },
  );
  const OpsSession = sequelize.define<OpsSession>(
    "OpsSession",
    {
      id: { type: DataTypes.TEXT, primaryKey: true },
      userId: { type: DataTypes.INTEGER, allowNull: false },
      csrfSecret: { type: DataTypes.TEXT, allowNull: false },
      createdAt: { type: DataTypes.DATE, defaultValue: DataTypes.NOW },
      expiresAt: { type: DataTypes.DATE, allowNull: false },
      ip: { type: DataTypes.TEXT, allowNull: true },
      userAgent: { type: DataTypes.TEXT, allowNull: true },
    },
    { tableName: "ops_sessions", timestamps: false, underscored: true },
  );
  const LoginAttempt = sequelize.define<LoginAttempt>(
    "LoginAttempt",
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      username: { type: DataTypes.TEXT, allowNull: false },
      ip: { type: DataTypes.TEXT, allowNull: true },
      succeeded: { type: DataTypes.BOOLEAN, allowNull: false },
      at: { type: DataTypes.DATE, defaultValue: DataTypes.NOW },
    },
    { tableName: "ops_login_attempts", timestamps: false, underscored: true },
  );
  OpsSession.belongsTo(OpsUser, { foreignKey: "userId", as: "user" });
  return { OpsUser, OpsSession, LoginAttempt };
}
