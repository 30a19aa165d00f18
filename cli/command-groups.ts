import type { Command } from "commander";

export interface CommandGroup {
  /** The top-level commands the module registers (`plumctl <command> …`). */
  commands: string[];
  load(): Promise<{ register(program: Command): void }>;
}

/**
 * Every command group, in the order `plumctl --help` lists them. A module is loaded only when argv names one
 * of its commands, so `plumctl serve` (a product instance) loads the product and lib/, never the agent.
 */
export const COMMAND_GROUPS: CommandGroup[] = [
  { commands: ["agent", "agent-restart"], load: () => import("./agent-command.ts") },
  { commands: ["config"], load: () => import("./config-commands.ts") },
  { commands: ["database"], load: () => import("./database-commands.ts") },
  { commands: ["audit"], load: () => import("./audit-commands.ts") },
  { commands: ["user"], load: () => import("./user-commands.ts") },
  { commands: ["serve"], load: () => import("./serve-command.ts") },
  { commands: ["validate", "migrate", "demo-data"], load: () => import("./product-commands.ts") },
  { commands: ["backup", "restore", "drill"], load: () => import("./backup-commands.ts") },
  { commands: ["doctor"], load: () => import("./doctor-command.ts") },
  { commands: ["install", "uninstall", "liveness-check", "wait-ready"], load: () => import("./install-commands.ts") },
  { commands: ["support-bundle"], load: () => import("./support-command.ts") },
  { commands: ["status"], load: () => import("./status-command.ts") },
  { commands: ["evidence"], load: () => import("./evidence-commands.ts") },
  { commands: ["release"], load: () => import("./release-commands.ts") },
  { commands: ["upgrade", "rollback"], load: () => import("./upgrade-commands.ts") },
];

/** The groups to load for an argv: the one its command names, or all (help, no command, an unknown one). */
export function groupsFor(argv: string[]): CommandGroup[] {
  const named = argv[2];
  const group = COMMAND_GROUPS.find((g) => g.commands.includes(named));
  return group ? [group] : COMMAND_GROUPS;
}
