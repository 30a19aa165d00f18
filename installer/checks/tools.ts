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
  async run() {
    const v = await versionOf(["restic", "version"]);
    if (!v) throw new PlumError("restic is not installed", { hint: "install it: apt-get install -y restic" });
    return v;
  },
};

export const postgresClientTools: PreflightCheck = {
  id: "postgresql-client",
  title: "pg_dump and pg_restore 15 or newer (backups, staging copies)",
  categories: ["install", "doctor"],
  async run() {
    const v = await versionOf(["pg_dump", "--version"]);
    if (!v) throw new PlumError("pg_dump is not installed", { hint: "install it: apt-get install -y postgresql-client" });
    const major = Number(/(\d+)\.\d+/.exec(v)?.[1] ?? 0);
    if (major < 15) throw new PlumError(`${v} is older than the PostgreSQL 15 server`, { hint: "install postgresql-client-15 or newer" });
    return v;
  },
};
