import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Repository } from "../backup-types.ts";
import type { EvidenceFact, RepositoryEncryption } from "./controls.ts";

const REMOTE = /^(sftp|rest|s3|b2|azure|gs|swift|rclone):/;

/** A repository location fit to print: a password in a URL (rest:https://user:pw@host/) is masked. */
export function locationWithoutCredentials(location: string): string {
  return location.replace(/(\/\/[^/@:\s]+):[^/@\s]*@/, "$1:***@");
}

/** What a record says about a repository: `detail.repositoryConfig` ({id, version}) and `detail.keys` ([{id, created}]). */
function recorded(
  role: string,
  records: EvidenceFact[],
): { record: EvidenceFact; config?: { id?: string; version?: number }; keys: Array<{ id: string; created?: string }> } | undefined {
  for (const r of [...records].reverse()) {
    if ((r.repository ?? "primary") !== role) continue;
    const config = r.detail.repositoryConfig as { id?: string; version?: number } | undefined;
    const keys = Array.isArray(r.detail.keys) ? (r.detail.keys as Array<{ id: string; created?: string }>) : undefined;
    if ((config && typeof config === "object") || keys) return { record: r, config, keys: (keys ?? []).map((k) => ({ id: String(k.id), created: k.created })) };
  }
  return undefined;
}

/** restic's key files (plain JSON: kdf and its parameters, the master key sealed) and its config file (encrypted). */
function repositoryFiles(dir: string): Pick<RepositoryEncryption, "keys" | "configFile"> | undefined {
  let names: string[];
  try {
    names = readdirSync(path.join(dir, "keys"));
  } catch {
    return undefined;
  }
  // Only the kdf and dates are cited: the salt and the sealed master key stay in the repository.
  const keys = names.map((id) => {
    try {
      const k = JSON.parse(readFileSync(path.join(dir, "keys", id), "utf8")) as { created?: string; kdf?: string };
      return { id, created: k.created, kdf: k.kdf };
    } catch {
      return { id };
    }
  });
  let configFile: RepositoryEncryption["configFile"] = "missing";
  try {
    const raw = readFileSync(path.join(dir, "config"));
    configFile = "encrypted";
    JSON.parse(raw.toString("utf8"));
    configFile = "plain-text";
  } catch {
    // unreadable as JSON: sealed, as restic writes it
  }
  return { keys, configFile };
}

/** The encryption facts of one repository: from the newest record that carries them, else from its files. */
export function repositoryEncryption(repo: Repository, records: EvidenceFact[]): RepositoryEncryption {
  const location = locationWithoutCredentials(repo.location);
  const fromRecord = recorded(repo.role, records);
  if (fromRecord) {
    return {
      role: repo.role,
      location,
      source: "recorded",
      recordId: fromRecord.record.id,
      repositoryId: fromRecord.config?.id,
      version: fromRecord.config?.version,
      keys: fromRecord.keys,
    };
  }
  if (REMOTE.test(repo.location)) return { role: repo.role, location, source: "remote", keys: [] };
  const files = repositoryFiles(repo.location.replace(/^local:/, ""));
  return files ? { role: repo.role, location, source: "repository-files", ...files } : { role: repo.role, location, source: "missing", keys: [] };
}
