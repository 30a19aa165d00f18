import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import type { ChainVerdict } from "../lib/hash-chain.ts";
import { describeError } from "../lib/errors.ts";
import { prepareHome } from "../lib/home.ts";
import { createLogger } from "../lib/logger.ts";
import { APP_VERSION } from "../lib/version.ts";
import { passwordResetter } from "../appliance/console/commands/user-commands.ts";
import { PlumError } from "../lib/errors.ts";
import { Agent } from "../appliance/agent.ts";
import { openOpsDatabase } from "../appliance/ops-database.ts";

function banner(agent: Agent): string {
  const lines = [
    "",
    `  Plum appliance ${APP_VERSION} is running`,
    `    product (edge proxy):  ${agent.urls.proxy}`,
    `    ops console:           ${agent.urls.console}`,
    `    database:              ${agent.pg.embedded ? "embedded" : "external"} PostgreSQL ${agent.pg.serverVersion} at ${agent.pg.host}:${agent.pg.port}`,
    `    PLUM_HOME:             ${agent.config.home}`,
  ];
  if (agent.firstAdmin) {
    lines.push(
      "",
      "  First start: sign in to the ops console as",
      `    username: ${agent.firstAdmin.username}`,
      `    one-time password: ${agent.firstAdmin.oneTimePassword}`,
      "  It is shown only now and must be changed at first sign-in.",
    );
  }
  lines.push("", "  Stop with Ctrl-C.", "");
  return lines.join("\n");
}

/** A hash chain's verdict for a terminal (or as JSON); a broken chain makes the command exit 1. */
export function printChainVerdict(label: string, verdict: ChainVerdict, json?: boolean): void {
  if (json) process.stdout.write(JSON.stringify(verdict) + "\n");
  else if (verdict.ok) process.stdout.write(`${label} verified: ${verdict.checked} rows, chain intact\n`);
  else process.stdout.write(`${label} BROKEN at row ${verdict.firstBad!.id}: ${verdict.firstBad!.reason}\n`);
  if (!verdict.ok) process.exitCode = 1;
}

export function registerApplianceCommands(program: Command): void {
  program
    .command("agent")
    .description("run the appliance: embedded PostgreSQL (unless external), edge proxy, product instance, ops console")
    .action(async () => {
      const { secrets } = prepareHome();
      const config = loadConfig();
      const log = createLogger("agent", { level: config.log.level, logDir: `${config.home}/logs` });
      const agent = await Agent.start(config, secrets, log);
      process.stdout.write(banner(agent) + "\n");
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        if (++signals > 1) {
          process.stderr.write(`${signal} again: exiting without a clean stop\n`);
          process.exit(130);
        }
        agent.stop(signal).then(
          () => process.exit(0),
          (err) => {
            process.stderr.write(describeError(err) + "\n");
            process.exit(1);
          },
        );
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    });

  const audit = program.command("audit").description("the tamper-evident audit log");
  audit
    .command("verify")
    .description("check the audit log's hash chain; exits 1 and names the first bad row if any row was edited, deleted or reordered")
    .option("--json", "print the verdict as JSON")
    .action(async (opts: { json?: boolean }) => {
      const db = await openOpsDatabase(loadConfig());
      try {
        printChainVerdict("audit log", await db.audit.verify(), opts.json);
      } finally {
        await db.close();
      }
    });
}

/** The host's root (whoever runs plumctl on the appliance) acts as an admin named "cli" in the audit log. */
const HOST_ADMIN = { id: 0, username: "cli", role: "admin" as const };

export function registerUserCommands(program: Command): void {
  const user = program.command("user").description("ops console users, from the host (for when no admin can sign in)");
  user
    .command("list")
    .description("list console users and their roles")
    .action(async () => {
      const db = await openOpsDatabase(loadConfig());
      try {
        for (const u of await db.models.User.findAll({ order: [["username", "ASC"]] })) {
          process.stdout.write(`${u.username}\t${u.role}\t${u.disabledAt ? "disabled" : u.mustChangePassword ? "one-time password" : "active"}\n`);
        }
      } finally {
        await db.close();
      }
    });
  user
    .command("reset-password")
    .argument("<username>")
    .description("give a user a new one-time password (printed once), end their sessions and lift any lockout")
    .action(async (username: string) => {
      const config = loadConfig();
      const db = await openOpsDatabase(config);
      try {
        const found = await db.models.User.findOne({ where: { username: username.toLowerCase() } });
        if (!found) throw new PlumError(`there is no console user "${username}"`, { hint: "see `plumctl user list`" });
        const ctx = { sequelize: db.sequelize, models: db.models, audit: db.audit, security: config.security, sessionHours: config.console.sessionHours };
        const { oneTimePassword } = await passwordResetter({ ctx, actor: HOST_ADMIN, input: { userId: found.id } });
        process.stdout.write(`one-time password for ${found.username}: ${oneTimePassword}\n(it must be changed at the next sign-in)\n`);
      } finally {
        await db.close();
      }
    });
}
