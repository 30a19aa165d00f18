import { runChild } from "../../lib/child-process.ts";
import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

/** The first line a tool prints about its version; undefined when it is missing or fails. */
async function versionOf(argv: string[]): Promise<string | undefined> {
  try {
    return (await runChild(argv, { timeoutMs: 10_000 })).stdout.trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

export const resticTool: PreflightCheck = {
  id: "restic",
  title: "restic is installed (backups)",
  categories: ["install", "doctor"],
  async run({ install }) {
    const v = await versionOf(["restic", "version"]);
    if (!v && install?.packages.includes("restic")) return "not installed yet: the install bundle carries it";
    if (!v) throw new PlumError("restic is not installed", { hint: "install it: apt-get install -y restic" });
    return v;
  },
};

export const postgresClientTools: PreflightCheck = {
  id: "postgresql-client",
  title: "pg_dump and pg_restore 15 or newer (backups, staging copies)",
  categories: ["install", "doctor"],
  async run({ install }) {
    const v = await versionOf(["pg_dump", "--version"]);
    if (!v && install?.packages.includes("postgresql-client-15")) return "not installed yet: the install bundle carries postgresql-client-15";
    if (!v) throw new PlumError("pg_dump is not installed", { hint: "install it: apt-get install -y postgresql-client" });
    const major = Number(/(\d+)\.\d+/.exec(v)?.[1] ?? 0);
    if (major < 15) throw new PlumError(`${v} is older than the PostgreSQL 15 server`, { hint: "install postgresql-client-15 or newer" });
    return v;
  },
};

/** rclone, when backup.appendOnly asks the agent to serve the repositories append-only (`rclone serve restic --append-only`). */
export const rcloneTool: PreflightCheck = {
  id: "rclone",
  title: "rclone is installed (append-only repositories, when backup.appendOnly is on)",
  categories: ["install", "start", "doctor"],
  async run({ config }) {
    if (!config.backup.appendOnly) return "not needed: backup.appendOnly is off";
    const v = await versionOf(["rclone", "version"]);
    if (!v)
      throw new PlumError("rclone is not installed, and backup.appendOnly asks for it", {
        hint: "install it: apt-get install -y rclone (or set backup.appendOnly: false)",
      });
    return v;
  },
};
