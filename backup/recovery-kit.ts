import { readFileSync } from "node:fs";
import type { BackupContext } from "./backup-context.ts";
import type { Repository } from "./backup-types.ts";
import { Restic } from "./restic/restic.ts";

async function describe(restic: Restic, repo: Repository): Promise<string> {
  try {
    const info = await restic.repositoryInfo(repo);
    return [
      `  ${repo.role}: ${repo.location}`,
      `    repository id: ${info.id}`,
      `    repository version: ${info.version}`,
      ...info.keys.map((k) => `    key: ${k.id}${k.created ? ` (created ${k.created})` : ""}`),
    ].join("\n");
  } catch (err) {
    return `  ${repo.role}: ${repo.location}\n    (not readable now: ${(err as Error).message})`;
  }
}

/**
 * The recovery kit: everything needed to restore the data WITHOUT this appliance — where the repositories
 * are, their password, their id and key fingerprints (to recognise the right repository), and the exact
 * plain restic + pg_restore commands. Printed on demand on the host only, and audited by the caller.
 */
export async function recoveryKit(ctx: BackupContext, plainRestore: string): Promise<string> {
  const restic = new Restic({ log: ctx.log });
  const repos = [ctx.repos.primary, ctx.repos.secondary].filter((r): r is Repository => !!r);
  const password = readFileSync(ctx.repos.primary.passwordFile, "utf8").trim();
  const lines = [
    "PLUM APPLIANCE — RECOVERY KIT",
    `printed ${new Date().toISOString()}. Keep it offline, like the keys of the building: with it, anyone can read the backups.`,
    "",
    "Repositories (restic, encrypted with the password below):",
    ...(await Promise.all(repos.map((r) => describe(restic, r)))),
    "",
    "Repository password (write it into a file of mode 0600 for RESTIC_PASSWORD_FILE):",
    `  ${password}`,
    "",
    plainRestore.trim(),
    "",
  ];
  return lines.join("\n");
}
