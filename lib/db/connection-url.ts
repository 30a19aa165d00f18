import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import type pg from "pg";
import { PlumError } from "../errors.ts";

/** libpq's sslmode values (https://www.postgresql.org/docs/15/libpq-ssl.html). */
export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** Where a PostgreSQL database is and how to log in to it, as a connection URL says. */
export interface PgConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Empty when the URL names none (libpq then uses the user name). */
  database: string;
  sslmode: SslMode;
  /** A CA certificate file (PEM) to check the server's certificate against. */
  sslrootcert?: string;
}

// The query parameters we honour; libpq refuses unknown ones too, rather than ignore what was asked for.
const PARAMETERS = ["sslmode", "sslrootcert", "host", "port", "user", "password", "dbname"] as const;
const HINT = "postgres://USER:PASSWORD@HOST:5432/DATABASE?sslmode=require, with reserved characters (@ : / ? # % and spaces) percent-encoded";

/**
 * Parse a `postgres://` or `postgresql://` URL the way libpq reads it: every part percent-decoded, query
 * parameters (`?host=…&sslmode=…`) over the URL's own parts, sslmode `prefer` when none is given. A bad
 * part is named in the error; the password never appears in it. `what` names the URL's source.
 */
export function parseDatabaseUrl(raw: string, what = "the database URL"): PgConnection {
  const bad = (part: string, hint = HINT) => new PlumError(`${what} ${part}`, { hint });
  const match = /^postgres(?:ql)?:\/\/([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/.exec(raw.trim());
  if (!match) throw bad("is not a postgres:// URL");
  const [, authority, path = "", query = ""] = match;
  const at = authority.lastIndexOf("@");
  const userinfo = at >= 0 ? authority.slice(0, at) : undefined;
  const hostport = at >= 0 ? authority.slice(at + 1) : authority;

  const decode = (text: string, part: string, shown = true) => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw bad(`has a ${part}${shown ? ` (${text})` : ""} that is not validly percent-encoded`);
    }
  };
  const colon = userinfo?.indexOf(":") ?? -1;
  let user = userinfo === undefined ? "" : decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, "user name");
  let password = colon >= 0 ? decode(userinfo!.slice(colon + 1), "password", false) : "";

  const hostMatch = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(hostport)!;
  let host = decode(hostMatch[1].replace(/^\[(.*)\]$/, "$1"), "host");
  let portText = hostMatch[2] ?? "";
  if (host.includes(",")) throw bad(`names several hosts (${host}): only one server is supported`);
  let database = decode(path, "database name");

  const params = new Map<string, string>();
  for (const pair of query.split("&").filter(Boolean)) {
    const eq = pair.indexOf("=");
    const name = decode(eq >= 0 ? pair.slice(0, eq) : pair, "query parameter name");
    if (!(PARAMETERS as readonly string[]).includes(name))
      throw bad(`has the query parameter "${name}", which is not supported`, `supported: ${PARAMETERS.join(", ")}`);
    params.set(name, decode(eq >= 0 ? pair.slice(eq + 1) : "", `${name} parameter`, name !== "password"));
  }
  host = params.get("host") ?? host;
  portText = params.get("port") ?? portText;
  user = params.get("user") ?? user;
  password = params.get("password") ?? password;
  database = params.get("dbname") ?? database;

  if (host === "") throw bad("names no host", "e.g. postgres://plum@db.example.internal:5432/postgres (a socket folder as %2Fvar%2Frun%2Fpostgresql)");
  const port = portText === "" ? 5432 : Number(portText);
  if (!/^\d+$/.test(portText || "5432") || port < 1 || port > 65535) throw bad(`has the port "${portText}", which is not a number from 1 to 65535`);
  const sslmode = params.get("sslmode") ?? "prefer";
  if (!(SSL_MODES as readonly string[]).includes(sslmode)) throw bad(`has sslmode=${sslmode}`, `sslmode is one of ${SSL_MODES.join(", ")}`);
  const sslrootcert = params.get("sslrootcert");
  return { host, port, user, password, database, sslmode: sslmode as SslMode, ...(sslrootcert ? { sslrootcert } : {}) };
}

/**
 * node-pg's `ssl` option for a libpq sslmode. node-pg either speaks TLS or does not: it cannot try one and
 * fall back to the other, which `allow` and `prefer` mean in libpq.
 * - disable: no TLS.
 * - allow: no TLS (libpq's first try is plain text too; a server that insists on TLS refuses, and the
 *   admin says `require`).
 * - prefer (libpq's default): no TLS. Choosing TLS would fail on every server without it, which prefer must
 *   reach; prefer never checks the certificate, so what is lost is encryption against a passive listener
 *   only. An admin who wants TLS says `require` or better. pg_dump and pg_restore, being libpq, still prefer.
 * - require: TLS, the certificate not checked (libpq: checked against sslrootcert when one is given,
 *   i.e. verify-ca, and so here).
 * - verify-ca: TLS, the certificate checked against sslrootcert (else Node's CA list), the host name not.
 * - verify-full: TLS, certificate and host name checked.
 */
export function nodePgSsl(conn: Pick<PgConnection, "sslmode" | "sslrootcert">): false | ConnectionOptions {
  const ca = () => {
    if (!conn.sslrootcert) return {};
    try {
      return { ca: readFileSync(conn.sslrootcert, "utf8") };
    } catch (err) {
      throw new PlumError(`cannot read the sslrootcert ${conn.sslrootcert}: ${(err as Error).message}`, {
        hint: "give the path of a PEM file holding the CA certificate of the PostgreSQL server, readable by the agent's user",
      });
    }
  };
  switch (conn.sslmode) {
    case "disable":
    case "allow":
    case "prefer":
      return false;
    case "require":
      return conn.sslrootcert ? { ...ca(), checkServerIdentity: () => undefined } : { rejectUnauthorized: false };
    case "verify-ca":
      return { ...ca(), checkServerIdentity: () => undefined };
    case "verify-full":
      return ca();
  }
}

/** node-pg's settings for one database of a server (a password left empty: node-pg reads PGPASSWORD, then ~/.pgpass). */
export function clientConfig(server: Omit<PgConnection, "database">, database: string): pg.ClientConfig {
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database,
    ssl: nodePgSsl(server),
    connectionTimeoutMillis: 5000,
  };
}

/** The one way from a PostgreSQL URL to node-pg's settings (agent, `plumctl migrate/validate`, product instances). */
export function clientConfigFromUrl(raw: string, what?: string): pg.ClientConfig & { database: string } {
  const conn = parseDatabaseUrl(raw, what);
  return { ...clientConfig(conn, conn.database), database: conn.database };
}

/** The same connection in libpq's environment variables, for pg_dump, pg_restore, psql: nothing in argv. */
export function pgEnvironment(conn: Omit<PgConnection, "database">): Record<string, string> {
  return {
    PGHOST: conn.host,
    PGPORT: String(conn.port),
    PGUSER: conn.user,
    // Without one, libpq falls back on an inherited PGPASSWORD or ~/.pgpass, as node-pg does.
    ...(conn.password ? { PGPASSWORD: conn.password } : {}),
    PGSSLMODE: conn.sslmode,
    ...(conn.sslrootcert ? { PGSSLROOTCERT: conn.sslrootcert } : {}),
    PGCONNECT_TIMEOUT: "10",
  };
}

/** A URL that parseDatabaseUrl reads back to the same connection (for child processes: in their environment, never argv). */
export function connectionUrl(server: Omit<PgConnection, "database">, database: string): string {
  const conn = { ...server, database };
  const host = conn.host.includes(":") ? `[${conn.host}]` : encodeURIComponent(conn.host);
  const userinfo = conn.user ? `${encodeURIComponent(conn.user)}${conn.password ? `:${encodeURIComponent(conn.password)}` : ""}@` : "";
  const query = [`sslmode=${conn.sslmode}`, ...(conn.sslrootcert ? [`sslrootcert=${encodeURIComponent(conn.sslrootcert)}`] : [])].join("&");
  return `postgres://${userinfo}${host}:${conn.port}/${encodeURIComponent(conn.database)}?${query}`;
}
