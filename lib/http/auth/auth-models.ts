import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type ModelStatic, type Sequelize } from "sequelize";

/**
 * Users, sessions and sign-in attempts. The ops console (plum_ops) and the product (plum) each have their
 * own tables of this same shape, and share the sign-in, session, CSRF and password code built on it.
 */
export interface AuthUser extends Model<InferAttributes<AuthUser>, InferCreationAttributes<AuthUser>> {
  id: CreationOptional<number>;
  username: string;
  role: string;
  passwordHash: string;
  mustChangePassword: CreationOptional<boolean>;
  lockedUntil: CreationOptional<Date | null>;
  disabledAt: CreationOptional<Date | null>;
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
}

export interface AuthSession extends Model<InferAttributes<AuthSession>, InferCreationAttributes<AuthSession>> {
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

export interface AuthModels {
  User: ModelStatic<AuthUser>;
  Session: ModelStatic<AuthSession>;
  LoginAttempt: ModelStatic<LoginAttempt>;
}

export interface AuthTables {
  /** Model name prefix, e.g. "Ops" or "Product". */
  name: string;
  users: string;
  sessions: string;
  attempts: string;
  roles: readonly string[];
  usernamePattern: RegExp;
}

export function defineAuthModels(sequelize: Sequelize, t: AuthTables): AuthModels {
  const User = sequelize.define<AuthUser>(
    `${t.name}User`,
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      username: { type: DataTypes.TEXT, allowNull: false, unique: true, validate: { is: t.usernamePattern } },
      role: { type: DataTypes.TEXT, allowNull: false, validate: { isIn: [t.roles as string[]] } },
      passwordHash: { type: DataTypes.TEXT, allowNull: false },
      mustChangePassword: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      lockedUntil: { type: DataTypes.DATE, allowNull: true },
      disabledAt: { type: DataTypes.DATE, allowNull: true },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
    },
    { tableName: t.users, timestamps: true, underscored: true },
  );
  const Session = sequelize.define<AuthSession>(
    `${t.name}Session`,
    {
      id: { type: DataTypes.TEXT, primaryKey: true },
      userId: { type: DataTypes.INTEGER, allowNull: false },
      csrfSecret: { type: DataTypes.TEXT, allowNull: false },
      createdAt: { type: DataTypes.DATE, defaultValue: DataTypes.NOW },
      expiresAt: { type: DataTypes.DATE, allowNull: false },
      ip: { type: DataTypes.TEXT, allowNull: true },
      userAgent: { type: DataTypes.TEXT, allowNull: true },
    },
    { tableName: t.sessions, timestamps: false, underscored: true },
  );
  const LoginAttempt = sequelize.define<LoginAttempt>(
    `${t.name}LoginAttempt`,
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      username: { type: DataTypes.TEXT, allowNull: false },
      ip: { type: DataTypes.TEXT, allowNull: true },
      succeeded: { type: DataTypes.BOOLEAN, allowNull: false },
      at: { type: DataTypes.DATE, defaultValue: DataTypes.NOW },
    },
    { tableName: t.attempts, timestamps: false, underscored: true },
  );
  return { User, Session, LoginAttempt };
}
