import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type ModelStatic, type Sequelize } from "sequelize";
import type { SetKind, SetManifest, SetPart, SetStatus } from "./backup-types.ts";

/** One backup set in plum_ops: status, its snapshots in each repository, its manifest. */
export interface BackupSet extends Model<InferAttributes<BackupSet>, InferCreationAttributes<BackupSet>> {
  id: string;
  kind: SetKind;
  status: CreationOptional<SetStatus>;
  startedAt: Date;
  finishedAt: CreationOptional<Date | null>;
  appVersion: string;
  schemaVersion: string;
  primarySnapshots: CreationOptional<Partial<Record<SetPart, string>>>;
  secondarySnapshots: CreationOptional<Partial<Record<SetPart, string>> | null>;
  copiedAt: CreationOptional<Date | null>;
  bytesAdded: CreationOptional<string | null>; // bigint
  bytesProcessed: CreationOptional<string | null>;
  manifest: CreationOptional<SetManifest | null>;
  error: CreationOptional<string | null>;
  startedBy: string;
}

const cache = new WeakMap<Sequelize, ModelStatic<BackupSet>>();

/** The BackupSet model of a Sequelize instance (defined once per instance). */
export function backupSetModel(sequelize: Sequelize): ModelStatic<BackupSet> {
  let model = cache.get(sequelize);
  if (!model) {
    model = sequelize.define<BackupSet>(
      "BackupSet",
      {
        id: { type: DataTypes.TEXT, primaryKey: true },
        kind: { type: DataTypes.TEXT, allowNull: false },
        status: { type: DataTypes.TEXT, allowNull: false, defaultValue: "running" },
        startedAt: { type: DataTypes.DATE, allowNull: false },
        finishedAt: { type: DataTypes.DATE, allowNull: true },
        appVersion: { type: DataTypes.TEXT, allowNull: false },
        schemaVersion: { type: DataTypes.TEXT, allowNull: false },
        primarySnapshots: { type: DataTypes.JSONB, allowNull: false, defaultValue: {} },
        secondarySnapshots: { type: DataTypes.JSONB, allowNull: true },
        copiedAt: { type: DataTypes.DATE, allowNull: true },
        bytesAdded: { type: DataTypes.BIGINT, allowNull: true },
        bytesProcessed: { type: DataTypes.BIGINT, allowNull: true },
        manifest: { type: DataTypes.JSONB, allowNull: true },
        error: { type: DataTypes.TEXT, allowNull: true },
        startedBy: { type: DataTypes.TEXT, allowNull: false },
      },
      { tableName: "backup_sets", timestamps: false, underscored: true },
    );
    cache.set(sequelize, model);
  }
  return model;
}
