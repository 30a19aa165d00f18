import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { passwordResetter } from "../appliance/console/commands/user-commands.ts";
import { withOpsDatabase } from "../appliance/ops-database.ts";

/** The host's root (whoever runs plumctl on the appliance) acts as an admin named "cli" in the audit log. */
const HOST_ADMIN = { id: 0, username: "cli", role: "admin" as const };

export function register(program: Command): void {
  const user = program.command("user").description("ops console users, from the host (for when no admin can sign in)");
  user
    .command("list")
    .description("list console users and their roles")
    .action(() =>
      withOpsDatabase(loadConfig(), async (db) => {
        for (const u of await db.models.User.findAll({ order: [["username", "ASC"]] })) {
          process.stdout.write(`${u.username}\t${u.role}\t${u.disabledAt ? "disabled" : u.mustChangePassword ? "one-time password" : "active"}\n`);
        }
      }),
    );
  user
    .command("reset-password")
    .argument("<username>")
    .description("give a user a new one-time password (printed once), end their sessions and lift any lockout")
    .action((username: string) => {
      const config = loadConfig();
      return withOpsDatabase(config, async (db) => {
        const found = await db.models.User.findOne({ where: { username: username.toLowerCase() } });
        if (!found) throw new PlumError(`there is no console user "${username}"`, { hint: "see `plumctl user list`" });
        const ctx = { sequelize: db.sequelize, models: db.models, audit: db.audit, security: config.security, sessionHours: config.console.sessionHours };
        const { oneTimePassword } = await passwordResetter({ ctx, actor: HOST_ADMIN, input: { userId: found.id } });
        process.stdout.write(`one-time password for ${found.username}: ${oneTimePassword}\n(it must be changed at the next sign-in)\n`);
      });
    });
}
