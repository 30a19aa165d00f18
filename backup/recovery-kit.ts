import type { BackupContext } from "./backup-context.ts";

/** The recovery kit: what restores the data without this appliance. (Filled in with the restic wrapper.) */
export async function recoveryKit(ctx: BackupContext, plainRestore: string): Promise<string> {
  return `Repositories: primary ${ctx.repos.primary.location}${ctx.repos.secondary ? `, secondary ${ctx.repos.secondary.location}` : ""}\n\n${plainRestore}`;
}
