import path from "node:path";
import type { Sequelize } from "sequelize";
import type { PlumConfig } from "../lib/config.ts";
import type { Logger } from "../lib/logger.ts";
import { homeLayout } from "../lib/paths.ts";
import type { PgServer } from "../lib/db/database.ts";
import { backupSetModel } from "./backup-catalogue.ts";
import type { Repository } from "./backup-types.ts";
import { EvidenceLog } from "./evidence/evidence-log.ts";
import { primaryRepositoryLocation } from "./repository-location.ts";
import { AppendOnlyServers } from "./restic/append-only-server.ts";

/** The release production runs and the schema version it expects (what a set is tagged with, not the agent's version). */
export interface ProductionRelease {
  version: string;
  schemaVersion: string;
}

/** Everything the backup agent works with. Built once by the agent (or a CLI command) from the config. */
export interface BackupContext {
  config: PlumConfig;
  log: Logger;
  /** The PostgreSQL server holding both databases; its password goes to pg_dump/pg_restore via PGPASSWORD, never argv. */
  pg: PgServer;
  databases: { product: string; ops: string };
  filesDir: string;
  configFile: string;
  /** Scratch space for staging (manifest, config copy) and restores before they are swapped in. */
  workDir: string;
  /** With backup.appendOnly, each folder repository carries its append-only endpoint (`appendOnly`). */
  repos: { primary: Repository; secondary?: Repository };
  /** The append-only servers these repositories go through (backup.appendOnly), stopped by whoever made them. */
  appendOnly?: AppendOnlyServers;
  opsSequelize: Sequelize;
  sets: ReturnType<typeof backupSetModel>;
  evidence: EvidenceLog;
  /**
   * What production runs, asked at each set: the agent knows it (its Production), a CLI command without an
   * agent reads the upgrade journal's pointer. Production may run a newer release than the agent's own.
   */
  production(): Promise<ProductionRelease>;
}

export function backupContextFor(opts: {
  config: PlumConfig;
  log: Logger;
  pg: PgServer;
  opsSequelize: Sequelize;
  production: () => Promise<ProductionRelease>;
  /** The agent's servers, shared by its contexts; without them and with backup.appendOnly, the context makes its own (stop them with `ctx.appendOnly.stop()`). */
  appendOnly?: AppendOnlyServers;
}): BackupContext {
  const layout = homeLayout(opts.config.home);
  const passwordFile = path.join(layout.secretsDir, "restic-password");
  const primary = primaryRepositoryLocation(opts.config);
  const servers = opts.config.backup.appendOnly ? (opts.appendOnly ?? appendOnlyServersFor(opts.config, opts.log)) : undefined;
  const served = (repo: Repository) => (servers ? servers.serve(repo) : repo);
  return {
    config: opts.config,
    log: opts.log,
    pg: opts.pg,
    databases: { product: opts.config.database.productDatabase, ops: opts.config.database.opsDatabase },
    filesDir: layout.filesDir,
    configFile: layout.configFile,
    workDir: path.join(layout.runDir, "backup"),
    repos: {
      primary: served({ role: "primary", location: primary, passwordFile }),
      secondary: opts.config.backup.secondary ? served({ role: "secondary", location: opts.config.backup.secondary, passwordFile }) : undefined,
    },
    appendOnly: servers,
    opsSequelize: opts.opsSequelize,
    sets: backupSetModel(opts.opsSequelize),
    evidence: new EvidenceLog(opts.opsSequelize),
    production: opts.production,
  };
}

/** The append-only servers of this PLUM_HOME (rclone, credentials in PLUM_HOME/secrets, logs and pid files in PLUM_HOME/run/backup). */
export function appendOnlyServersFor(config: PlumConfig, log?: Logger): AppendOnlyServers {
  const layout = homeLayout(config.home);
  return new AppendOnlyServers({ secretsDir: layout.secretsDir, runDir: path.join(layout.runDir, "backup"), log });
}
