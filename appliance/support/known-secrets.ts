import type pg from "pg";
import type { PlumConfig } from "../../lib/config.ts";
import { parseDatabaseUrl } from "../../lib/db/connection-url.ts";
import type { KnownSecret, TokenSets } from "./redactor.ts";
import { secretFiles } from "./support-sources.ts";

// The newest rows of the bulk tables: enough for any log tail a bundle holds, bounded for a large catalogue.
const BULK_ROWS = 100_000;

function urlPassword(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return parseDatabaseUrl(url).password || undefined;
  } catch {
    return undefined;
  }
}

function repositoryPassword(location: string | undefined): string | undefined {
  const m = location ? /\/\/[^/@:\s]+:([^/@\s]+)@/.exec(location) : null;
  return m ? decodeURIComponent(m[1]) : undefined;
}

/**
 * The secrets the appliance holds by value: every file of PLUM_HOME/secrets (session key, PostgreSQL and
 * role passwords, restic password, signing key, control token) and the passwords in configured URLs, also
 * when an environment variable set them.
 */
export function knownSecrets(config: PlumConfig, env: NodeJS.ProcessEnv = process.env): KnownSecret[] {
  const found: KnownSecret[] = secretFiles(config).map((f) => ({ kind: f.name.replace(/\.pem$/, ""), value: f.value }));
  const add = (kind: string, value: string | undefined) => value && found.push({ kind, value });
  add("database-url-password", urlPassword(config.database.url));
  add("repository-url-password", repositoryPassword(config.backup.primary));
  add("repository-url-password", repositoryPassword(config.backup.secondary));
  for (const name of ["RESTIC_PASSWORD", "RESTIC_FROM_PASSWORD", "PGPASSWORD"]) add(name.toLowerCase().replace(/_/g, "-"), env[name]);
  return found;
}

async function column(client: pg.Client, sql: string): Promise<string[]> {
  return (await client.query<{ v: string | null }>(sql)).rows.map((r) => r.v).filter((v): v is string => !!v);
}

/**
 * The product's and the console's tokens: voucher share tokens and codes and the sessions' CSRF secrets by
 * value; sessions and merchant API keys only by their sha256, which is all the databases keep of them.
 */
export async function databaseTokens(ops: pg.Client | undefined, product: pg.Client | undefined): Promise<TokenSets> {
  const tokens: TokenSets = { byValue: new Map(), byHash: new Map() };
  if (ops) {
    for (const v of await column(ops, `select id as v from ops_sessions order by created_at desc limit ${BULK_ROWS}`)) tokens.byHash.set(v, "console-session");
    for (const v of await column(ops, `select csrf_secret as v from ops_sessions order by created_at desc limit ${BULK_ROWS}`))
      tokens.byValue.set(v, "console-csrf-secret");
  }
  if (product) {
    for (const v of await column(product, `select id as v from product_sessions order by created_at desc limit ${BULK_ROWS}`))
      tokens.byHash.set(v, "product-session");
    for (const v of await column(product, `select csrf_secret as v from product_sessions order by created_at desc limit ${BULK_ROWS}`))
      tokens.byValue.set(v, "product-csrf-secret");
    for (const v of await column(product, `select api_key_hash as v from merchants`)) tokens.byHash.set(v, "merchant-api-key");
    const vouchers = await product.query<{ share_token: string; code: string }>(`select share_token, code from vouchers order by id desc limit ${BULK_ROWS}`);
    for (const v of vouchers.rows) {
      tokens.byValue.set(v.share_token, "voucher-share-token");
      tokens.byValue.set(v.code, "voucher-code");
      tokens.byValue.set(v.code.replace(/-/g, ""), "voucher-code");
    }
  }
  return tokens;
}
