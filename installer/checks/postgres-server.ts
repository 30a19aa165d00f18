import pg from "pg";
import { PlumError } from "../../lib/errors.ts";
import { clientConfigFromUrl } from "../../lib/db/connection-url.ts";
import { MINIMUM_SERVER_VERSION } from "../../lib/db/database.ts";
import type { PreflightCheck } from "./check.ts";

export const postgresServer: PreflightCheck = {
  id: "postgres-server",
  title: "the client's own PostgreSQL (database.url) answers and is version 15 or newer",
  categories: ["install", "doctor"],
  async run({ config }) {
    if (!config.database.url) return "not needed: the embedded PostgreSQL 15 is used";
    const client = new pg.Client({ ...clientConfigFromUrl(config.database.url, "database.url"), connectionTimeoutMillis: 10_000 });
    try {
      await client.connect();
      const { rows } = await client.query<{ server_version_num: string; server_version: string }>(
        "SELECT current_setting('server_version_num') AS server_version_num, current_setting('server_version') AS server_version",
      );
      const num = Number(rows[0].server_version_num);
      if (num < MINIMUM_SERVER_VERSION)
        throw new PlumError(`database.url's server is PostgreSQL ${rows[0].server_version}, older than 15`, {
          hint: "point database.url at PostgreSQL 15 or newer, or remove it to use the embedded server",
        });
      return `PostgreSQL ${rows[0].server_version}`;
    } catch (err) {
      if (err instanceof PlumError) throw err;
      throw new PlumError(`database.url's server does not answer: ${(err as Error).message}`, {
        hint: "check the host, port, user and password in database.url (and that this host may connect: pg_hba.conf)",
      });
    } finally {
      await client.end().catch(() => undefined);
    }
  },
};
