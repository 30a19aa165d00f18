import { DataTypes, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Model, type Sequelize, type Transaction } from "sequelize";
import type { AuditSink } from "../../lib/http/auth/auth-context.ts";

/** The product's own event log (sign-ins, imports, redemptions, approvals); restored with the product. */
export interface ProductEvent extends Model<InferAttributes<ProductEvent>, InferCreationAttributes<ProductEvent>> {
  id: CreationOptional<string>;
  at: CreationOptional<Date>;
  actor: string;
  action: string;
  target: string | null;
  outcome: CreationOptional<string>;
  detail: CreationOptional<Record<string, unknown>>;
}

export function defineProductEvent(sequelize: Sequelize) {
  const ProductEvent = sequelize.define<ProductEvent>(
    "ProductEvent",
    {
      id: { type: DataTypes.BIGINT, primaryKey: true, autoIncrement: true },
      at: { type: DataTypes.DATE, defaultValue: DataTypes.NOW },
      actor: { type: DataTypes.TEXT, allowNull: false },
      action: { type: DataTypes.TEXT, allowNull: false },
      target: { type: DataTypes.TEXT, allowNull: true },
      outcome: { type: DataTypes.TEXT, allowNull: false, defaultValue: "success" },
      detail: { type: DataTypes.JSONB, allowNull: false, defaultValue: {} },
    },
    { tableName: "product_events", timestamps: false, underscored: true },
  );
  const sink: AuditSink = {
    append: (event, transaction?: Transaction) =>
      ProductEvent.create(
        { actor: event.actor, action: event.action, target: event.target ?? null, outcome: event.outcome ?? "success", detail: event.detail ?? {} },
        { transaction },
      ),
  };
  return { ProductEvent, events: sink };
}
