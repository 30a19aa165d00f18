import type { Command } from "commander";
import { openProductDatabase, reachableServer } from "../appliance/ops-database.ts";
import { clientConfig } from "../lib/db/database.ts";
import { clientConfigFromUrl } from "../lib/db/connection-url.ts";
import { loadConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import pg from "pg";
import { PRODUCT_MIGRATIONS_DIR } from "../lib/version.ts";
import { appliedSchemaVersion, migrate, MIGRATIONS_TABLE } from "../lib/db/migrate.ts";
import { openSequelize } from "../lib/db/sequelize.ts";
import { applyProductPrivileges, ensureProductRoles, migrateProductDatabase, productRolesOf, roleServer } from "../lib/db/product-roles.ts";
import { homeLayout } from "../lib/paths.ts";
import { demoDataLoader } from "../product/demo/demo-data.ts";
import { runSuites, SUITES } from "../product/validation/suites.ts";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The product's commands run beside the agent (validate, migrate, demo data); `serve` is serve-command.ts. */
export function register(program: Command): void {
  program
    .command("validate")
    .description(
      `run the product's validation suites against an instance and its database; prints JSON reports, exits 1 on any failure (suites: ${Object.keys(SUITES).join(", ")})`,
    )
    .requiredOption("--url <url>", "base URL of the product instance, e.g. http://127.0.0.1:8080")
    .option(
      "--database-url <url>",
      "its database; better in PLUM_VALIDATE_DATABASE_URL (keeps the password out of the process list); default: this appliance's product database",
    )
    .option("--suite <name>", "a suite to run (repeatable); default: all", collect, [])
    .action(async (opts: { url: string; databaseUrl?: string; suite: string[] }) => {
      const names = opts.suite.length > 0 ? opts.suite : Object.keys(SUITES);
      const unknown = names.filter((n) => !SUITES[n]);
      if (unknown.length > 0)
        throw new PlumError(`unknown suite${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}`, { hint: `choose from ${Object.keys(SUITES).join(", ")}` });
      const databaseUrl = opts.databaseUrl ?? process.env.PLUM_VALIDATE_DATABASE_URL;
      const sequelize = databaseUrl
        ? openSequelize(clientConfigFromUrl(databaseUrl, "the validated database URL"), { poolMax: 5 })
        : (await openProductDatabase(loadConfig())).sequelize;
      try {
        const reports = await runSuites(names, { baseUrl: opts.url, sequelize });
        process.stdout.write(JSON.stringify(reports, null, 2) + "\n");
        for (const r of reports) {
          process.stderr.write(`${r.passed ? "PASS" : "FAIL"}  ${r.suite} (${r.checks.length} checks)\n`);
          for (const c of r.checks.filter((x) => !x.passed)) process.stderr.write(`      ✗ ${c.name}: ${c.detail}\n`);
        }
        if (reports.some((r) => !r.passed)) process.exitCode = 1;
      } finally {
        await sequelize.close();
      }
    });

  program
    .command("migrate")
    .description(
      "apply this release's product migrations (or undo them down to --to NAME); prints JSON: what ran, the schema version, seconds. Used by the agent on staging and production",
    )
    .option("--to <migration>", "undo the migrations applied after this one (this release's down migrations)")
    .action(async (opts: { to?: string }) => {
      const databaseUrl = process.env.PLUM_MIGRATE_DATABASE_URL;
      // Beside an appliance: as its migrations' role (the owner of the product's schema), never as the superuser.
      const config = databaseUrl ? undefined : loadConfig();
      const server = config ? await reachableServer(config) : undefined;
      const roles = config ? productRolesOf(config.database.roles, homeLayout(config.home).secretsDir) : undefined;
      if (server && roles) {
        await ensureProductRoles(server, roles);
        await applyProductPrivileges(server, config!.database.productDatabase, config!.database.roles);
      }
      const connection = databaseUrl
        ? clientConfigFromUrl(databaseUrl, "PLUM_MIGRATE_DATABASE_URL")
        : clientConfig(roleServer(server!, roles!.migrate), config!.database.productDatabase);
      const started = Date.now();
      let ran: string[] = [];
      if (opts.to) {
        const client = new pg.Client(connection);
        await client.connect();
        let count: number;
        try {
          const { rows } = await client.query<{ name: string }>(`select name from ${MIGRATIONS_TABLE} order by run_on, id`);
          const names = rows.map((r) => r.name);
          const at = names.indexOf(opts.to);
          if (at < 0)
            throw new PlumError(`migration ${opts.to} is not applied to database "${connection.database}"`, { hint: `applied: ${names.join(", ") || "none"}` });
          count = names.length - 1 - at;
        } finally {
          await client.end();
        }
        if (count > 0) ran = await migrate({ clientConfig: connection, dir: PRODUCT_MIGRATIONS_DIR, direction: "down", count });
      } else if (server && roles) {
        ({ ran } = await migrateProductDatabase(server, config!.database.productDatabase, roles, { dir: PRODUCT_MIGRATIONS_DIR }));
      } else {
        ran = await migrate({ clientConfig: connection, dir: PRODUCT_MIGRATIONS_DIR });
      }
      const client = new pg.Client(connection);
      await client.connect();
      const schemaVersion = await appliedSchemaVersion(client).finally(() => client.end());
      process.stdout.write(JSON.stringify({ direction: opts.to ? "down" : "up", ran, schemaVersion, seconds: (Date.now() - started) / 1000 }) + "\n");
    });

  program
    .command("demo-data")
    .description("fill this appliance's product with a realistic dataset (programmes, participants, ledger history, catalogue, vouchers)")
    .option("--participants <n>", "how many participants", "1000")
    .option("--seed <n>", "seed for the generator", "42")
    .action(async (opts: { participants: string; seed: string }) => {
      const participants = Number(opts.participants);
      if (!Number.isInteger(participants) || participants < 1 || participants > 2_000_000)
        throw new PlumError("--participants must be a whole number from 1 to 2,000,000");
      const { sequelize } = await openProductDatabase(loadConfig());
      try {
        const summary = await demoDataLoader(sequelize, { participants, seed: Number(opts.seed), log: (line) => process.stderr.write(`  ${line}\n`) });
        process.stdout.write(
          `demo data ${summary.tag} loaded in ${summary.seconds.toFixed(1)} s: ${summary.participants} participants, ${summary.programmes} programmes, ${summary.merchants} merchants, ${summary.items} items, ${summary.ledgerEntries} ledger entries, ${summary.vouchers} vouchers (${summary.vouchersRedeemed} redeemed); payout run for ${summary.payouts.period} approved for ${summary.payouts.participants} sales participants\n` +
            `programme manager: ${summary.manager.username}, one-time password: ${summary.manager.oneTimePassword}\n`,
        );
      } finally {
        await sequelize.close();
      }
    });
}
