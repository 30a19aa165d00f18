import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import type { PlumConfig } from "../../lib/config.ts";
import { clientConfig, pgServerFor, type PgServer } from "../../lib/db/database.ts";
import { homeLayout } from "../../lib/paths.ts";

const CONNECT_TIMEOUT_MS = 5000;
const QUERY_TIMEOUT_MS = 15_000;

/** Every file of PLUM_HOME/secrets (the public signing key is no secret): read, never created (a bundle changes nothing). */
export function secretFiles(config: PlumConfig): Array<{ name: string; value: string }> {
  const dir = homeLayout(config.home).secretsDir;
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.endsWith(".pub.pem"))
    .map((e) => ({ name: e.name, value: readFileSync(path.join(dir, e.name), "utf8").trim() }))
    .filter((f) => f.value !== "");
}

/** The server as the agent reaches it; the embedded server's password from its file (empty when there is none). */
export function supportServer(config: PlumConfig): PgServer {
  const file = path.join(homeLayout(config.home).secretsDir, "postgres-password");
  return pgServerFor(config, existsSync(file) ? readFileSync(file, "utf8").trim() : "");
}

/** A connection for the collectors, each query with a deadline; undefined and the reason when it cannot be had. */
export async function openClient(server: PgServer, database: string): Promise<{ client?: pg.Client; error?: string }> {
  const client = new pg.Client({
    ...clientConfig(server, database),
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    statement_timeout: QUERY_TIMEOUT_MS,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return { client };
  } catch (err) {
    await client.end().catch(() => undefined);
    return { error: `cannot reach database ${database} at ${server.host}:${server.port}: ${(err as Error).message}` };
  }
}
