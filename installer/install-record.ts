import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { InstallPaths } from "./install-layout.ts";

/**
 * /etc/plum/install.json: what `plumctl install` put on the host that was not there before, so that
 * `uninstall --purge` removes exactly that (users it created) and says what it leaves (packages).
 */
export interface InstallRecord {
  versions: string[];
  usersCreated: string[];
  packagesInstalled: string[];
  installedAt: string;
  updatedAt: string;
}

export const installRecordFile = (p: InstallPaths) => path.join(p.etcDir, "install.json");

export function readInstallRecord(p: InstallPaths): InstallRecord {
  const file = installRecordFile(p);
  const now = new Date().toISOString();
  if (!existsSync(file)) return { versions: [], usersCreated: [], packagesInstalled: [], installedAt: now, updatedAt: now };
  return JSON.parse(readFileSync(file, "utf8")) as InstallRecord;
}

export function writeInstallRecord(p: InstallPaths, record: InstallRecord): void {
  const file = installRecordFile(p);
  writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2) + "\n", { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
}
