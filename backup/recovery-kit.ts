import { readFileSync } from "node:fs";
import path from "node:path";
import { homeLayout } from "../lib/paths.ts";
import type { BackupContext } from "./backup-context.ts";
import { appliancePin, fingerprintAdvice } from "./evidence/evidence-pin.ts";
import { EFFECTIVE_CONFIG_FILENAME, SET_STAGING_FOLDER, type Repository } from "./backup-types.ts";
import { displayLocation } from "./restic/restic-errors.ts";
import { Restic } from "./restic/restic.ts";

/** How many of the latest good sets the kit lists (the repository lists them all: `restic snapshots --tag plum-set,part:files`). */
const KIT_SETS = 20;

/** The location as the kit prints it: masked when it holds credentials, saying where the full value is. */
function kitLocation(repo: Repository): string {
  const shown = displayLocation(repo.location);
  const masked =
    shown === repo.location ? "" : `\n    (credentials masked: the full URL is backup.${repo.role} in plum.yaml, which each set's files snapshot also holds)`;
  const served = repo.appendOnly ? "\n    (written through the appliance's append-only server; restic on another host reads the folder itself)" : "";
  return `${shown}${masked}${served}`;
}

async function describe(restic: Restic, repo: Repository): Promise<string> {
  try {
    const info = await restic.repositoryInfo(repo);
    return [
      `  ${repo.role}: ${kitLocation(repo)}`,
      `    repository id: ${info.id}`,
      `    repository version: ${info.version}`,
      ...info.keys.map((k) => `    key: ${k.id}${k.created ? ` (created ${k.created})` : ""}`),
    ].join("\n");
  } catch (err) {
    return `  ${repo.role}: ${kitLocation(repo)}\n    (not readable now: ${(err as Error).message})`;
  }
}

/** This appliance as the restore commands refer to it: where its files were, its databases, what production ran. */
async function describeAppliance(ctx: BackupContext): Promise<string[]> {
  const production = await ctx.production();
  const staging = path.join(ctx.workDir, SET_STAGING_FOLDER);
  return [
    "This appliance (what the commands below call <original PLUM_HOME>):",
    `  PLUM_HOME: ${ctx.config.home}`,
    `  files directory: ${ctx.filesDir} (restic restores it below a target folder at this absolute path)`,
    `  each set's manifest.json, plum.yaml and ${EFFECTIVE_CONFIG_FILENAME} (the configuration in effect, secrets masked): ${staging}/`,
    `  databases: ${ctx.databases.product} (product) and ${ctx.databases.ops} (the appliance's own), on PostgreSQL at ${ctx.pg.host}:${ctx.pg.port}`,
    `  production runs release ${production.version} (schema ${production.schemaVersion})`,
  ];
}

/** The fingerprint of the key that signs evidence, for the auditor to keep beside the kit. */
function describeEvidenceKey(ctx: BackupContext): string[] {
  const { pin, unreadable } = appliancePin(homeLayout(ctx.config.home).secretsDir);
  if (!pin) return ["Evidence signing key (ed25519):", `  (${unreadable ?? "no key yet: the appliance makes it when it first starts"})`];
  return ["Evidence signing key (ed25519) fingerprint:", `  ${pin.fingerprint}`, `  ${fingerprintAdvice(pin.fingerprint)}`];
}

/** The latest good sets (<set id>), newest first, with where each is stored. */
async function describeSets(ctx: BackupContext): Promise<string[]> {
  const sets = await ctx.sets.findAll({ where: { status: "succeeded" }, order: [["startedAt", "DESC"]], limit: KIT_SETS });
  if (sets.length === 0) return ["Backup sets: none has succeeded yet (`plumctl backup run` makes one)."];
  return [
    `Backup sets (<set id>): the ${sets.length} latest good ones when this kit was printed, newest first; a repository lists`,
    "every set it holds with `restic snapshots --tag plum-set,part:files`.",
    ...sets.map(
      (s) =>
        `  ${s.id}  ${s.kind.padEnd(11)}  ${(s.finishedAt ?? s.startedAt).toISOString()}  release ${s.appVersion}  schema ${s.schemaVersion}  ${s.secondarySnapshots ? "primary and secondary" : "primary only"}`,
    ),
  ];
}

/**
 * The recovery kit: everything needed to restore the data WITHOUT this appliance, on a fresh host — where the
 * repositories are, their password, their id and key fingerprints (to recognise the right repository), the
 * fingerprint of the evidence signing key (what an auditor pins when verifying exports), the
 * latest good sets, where this appliance kept its files (restic restores absolute paths), and the exact plain
 * restic + pg_restore commands. Printed on demand on the host only, and audited by the caller.
 */
export async function recoveryKit(ctx: BackupContext, plainRestore: string): Promise<string> {
  const restic = new Restic({ log: ctx.log });
  const repos = [ctx.repos.primary, ctx.repos.secondary].filter((r): r is Repository => !!r);
  const password = readFileSync(ctx.repos.primary.passwordFile, "utf8").trim();
  const lines = [
    "PLUM APPLIANCE — RECOVERY KIT",
    `printed ${new Date().toISOString()}. Keep it offline, like the keys of the building: with it, anyone can read the backups.`,
    "",
    ...(await describeAppliance(ctx)),
    "",
    ...describeEvidenceKey(ctx),
    "",
    "Repositories (restic, encrypted with the password below):",
    ...(await Promise.all(repos.map((r) => describe(restic, r)))),
    "",
    "Repository password (write it into a file of mode 0600 for RESTIC_PASSWORD_FILE):",
    `  ${password}`,
    "",
    ...(await describeSets(ctx)),
    "",
    plainRestore.trim(),
    "",
  ];
  return lines.join("\n");
}
