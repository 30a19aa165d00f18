import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

const run = promisify(execFile);

async function versionOf(command: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout } = await run(command, args, { timeout: 10_000 });
    return stdout.trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

export const resticTool: PreflightCheck = {
  id: "restic",
  title: "restic is installed (backups)",
  categories: ["install", "doctor"],
  async run() {
    const v = await versionOf("restic", ["version"]);
    if (!v) throw new PlumError("restic is not installed", { hint: "install it: apt-get install -y restic" });
    return v;
  },
};

export const postgresClientTools: PreflightCheck = {
  id: "postgresql-client",
  title: "pg_dump and pg_restore 15 or newer (backups, staging copies)",
  categories: ["install", "doctor"],
  async run() {
    const v = await versionOf("pg_dump", ["--version"]);
    if (!v) throw new PlumError("pg_dump is not installed", { hint: "install it: apt-get install -y postgresql-client" });
    const major = Number(/(\d+)\.\d+/.exec(v)?.[1] ?? 0);
    if (major < 15) throw new PlumError(`${v} is older than the PostgreSQL 15 server`, { hint: "install postgresql-client-15 or newer" });
    return v;
  },
};
