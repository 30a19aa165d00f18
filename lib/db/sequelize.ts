import type pg from "pg";
import { Sequelize } from "sequelize";
import type { Logger } from "../logger.ts";

/** One Sequelize connection pool for one database. */
export function openSequelize(config: pg.ClientConfig, opts: { log?: Logger; poolMax?: number } = {}): Sequelize {
  return new Sequelize(config.database!, config.user!, String(config.password ?? ""), {
    host: config.host,
    port: config.port,
    dialect: "postgres",
    dialectOptions: config.ssl ? { ssl: config.ssl } : {},
    logging: opts.log ? (sql: string) => opts.log!.trace({ sql }, "sql") : false,
    pool: { max: opts.poolMax ?? 10, min: 0, idle: 10_000, acquire: 15_000 },
    define: { underscored: true, timestamps: false },
  });
}
