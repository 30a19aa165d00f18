import type { Command } from "commander";
import { loadConfig } from "../lib/config.ts";
import { pgServerFor } from "../lib/db/database.ts";
import { productRolesOf, productRolesSql } from "../lib/db/product-roles.ts";
import { homeLayout } from "../lib/paths.ts";

export function register(program: Command): void {
  const database = program.command("database").description("the appliance's PostgreSQL roles (the product's DML-only login, its migrations' owner)");
  database
    .command("roles-sql")
    .description(
      "print the SQL a DBA runs on the client's own PostgreSQL when the appliance's user may not create roles (passwords as SCRAM verifiers, never in clear)",
    )
    .action(() => {
      const config = loadConfig();
      const roles = productRolesOf(config.database.roles, homeLayout(config.home).secretsDir);
      process.stdout.write(productRolesSql(roles, pgServerFor(config, "").user) + "\n");
    });
}
