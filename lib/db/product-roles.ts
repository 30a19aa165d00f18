import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import pg from "pg";
import { PlumError } from "../errors.ts";
import { ensureRolePassword } from "../secrets.ts";
import type { Logger } from "../logger.ts";
import { clientConfig, connectAdmin, type PgServer } from "./database.ts";
import { migrate } from "./migrate.ts";

/**
 * Least privilege in PostgreSQL. The product logs in as `app` (DML on the product database's tables, usage of
 * its sequences, nothing else: no DDL, no trigger switched off, no superuser GUC, no program run by COPY, no
 * CONNECT on the appliance's own databases); its migrations run as `migrate`, the owner of everything in the
 * product database's public schema; the superuser the agent holds does the rest (restores, staging, plum_ops,
 * setting these roles up). Role names are cluster-wide, hence configurable (database.roles).
 */

export interface RoleNames {
  app: string;
  migrate: string;
}
export interface ProductRoles {
  app: { name: string; password: string };
  migrate: { name: string; password: string };
}

const q = (name: string) => pg.escapeIdentifier(name);
const lit = (value: string) => pg.escapeLiteral(value);

/** The server as one of the product roles logs in to it. */
export function roleServer(server: PgServer, role: { name: string; password: string }): PgServer {
  return { ...server, user: role.name, password: role.password };
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677, 4096 iterations, as libpq makes
 * it): the role is given this, so the password itself never reaches the server's statement log.
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16)): string {
  const iterations = 4096;
  const salted = pbkdf2Sync(password.normalize("NFKC"), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

const ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT";

/** The statements that create (or reset) the two roles, with their passwords as SCRAM verifiers. */
function roleStatements(roles: ProductRoles, exists: { app: boolean; migrate: boolean }): string[] {
  return (["app", "migrate"] as const).map(
    (k) => `${exists[k] ? "ALTER" : "CREATE"} ROLE ${q(roles[k].name)} WITH ${ROLE_ATTRIBUTES} PASSWORD ${lit(scramVerifier(roles[k].password))}`,
  );
}

/**
 * What a DBA runs on the client's own server when the appliance's user may not create roles: the two roles
 * (passwords given as SCRAM verifiers of the appliance's secret files, never the passwords), and membership of
 * the migrations' role for the appliance's user, so that it can hand the product's objects to it.
 */
export function productRolesSql(roles: ProductRoles, adminUser: string): string {
  return [
    "-- as a superuser (or a role with CREATEROLE) on the appliance's PostgreSQL server:",
    ...roleStatements(roles, { app: false, migrate: false }).map((s) => `${s};`),
    `GRANT ${q(roles.migrate.name)} TO ${q(adminUser)};`,
    "-- then start the agent again: it grants the roles what they need on the product's database.",
  ].join("\n");
}

const DUPLICATE = new Set(["42710", "23505"]);

/** Create the roles when missing, without login (what a restore or staging copy needs to grant to). */
async function ensureRolesExist(c: pg.ClientBase, names: RoleNames): Promise<void> {
  for (const name of [names.app, names.migrate]) {
    if ((await c.query("select 1 from pg_roles where rolname = $1", [name])).rowCount === 1) continue;
    await c.query(`create role ${q(name)} with NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT`).catch((err) => {
      if (!DUPLICATE.has((err as { code?: string }).code ?? "")) throw err; // another start created it meanwhile
    });
  }
}

async function adminRights(c: pg.ClientBase): Promise<{ superuser: boolean; createRole: boolean; user: string }> {
  const { rows } = await c.query<{ rolsuper: boolean; rolcreaterole: boolean; user: string }>(
    "select rolsuper, rolcreaterole, current_user as user from pg_roles where rolname = current_user",
  );
  return { superuser: rows[0].rolsuper, createRole: rows[0].rolcreaterole, user: rows[0].user };
}

async function canLogIn(server: PgServer, role: { name: string; password: string }): Promise<boolean> {
  const client = new pg.Client(clientConfig(roleServer(server, role), "postgres"));
  client.on("error", () => undefined);
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * At the agent's start: the two roles exist, may log in with the passwords of the secret files and have no
 * more than the attributes above. Without CREATEROLE (a client's server), roles a DBA made are checked to log
 * in; otherwise the error carries the SQL for the DBA.
 */
export async function ensureProductRoles(server: PgServer, roles: ProductRoles): Promise<void> {
  const c = await connectAdmin(server);
  try {
    const rights = await adminRights(c);
    if (rights.superuser || rights.createRole) {
      await ensureRolesExist(c, { app: roles.app.name, migrate: roles.migrate.name });
      for (const s of roleStatements(roles, { app: true, migrate: true })) await c.query(s);
      if (!rights.superuser) await c.query(`grant ${q(roles.migrate.name)} to ${q(rights.user)}`);
      return;
    }
  } finally {
    await c.end();
  }
  const missing = [];
  for (const k of ["app", "migrate"] as const) if (!(await canLogIn(server, roles[k]))) missing.push(roles[k].name);
  if (missing.length > 0)
    throw new PlumError(
      `the PostgreSQL user "${server.user}" may not create roles, and ${missing.map((m) => `"${m}"`).join(" and ")} cannot log in with the appliance's passwords`,
      {
        hint: "ask the server's DBA to run the SQL printed by `plumctl database roles-sql` (also below), or give the user CREATEROLE, then start the agent again",
        detail: productRolesSql(roles, server.user),
      },
    );
}

const closeDatabaseSql = (database: string) => `revoke all on database ${q(database)} from public`;

/** Close a database to PUBLIC (no CONNECT, no TEMPORARY): only its owner, superusers and roles granted CONNECT. */
export async function closeDatabase(c: pg.ClientBase, database: string): Promise<void> {
  await c.query(closeDatabaseSql(database));
}

/** The admin databases (plum_ops and the like): closed to every role but the agent's own user. */
export async function closeAdminDatabases(server: PgServer, databases: string[]): Promise<void> {
  const c = await connectAdmin(server);
  try {
    for (const d of databases) await closeDatabase(c, d);
  } finally {
    await c.end();
  }
}

/** Everything in the public schema not owned by `owner`, as the ALTER … OWNER statement that hands it over. */
async function foreignOwned(c: pg.ClientBase, owner: string): Promise<string[]> {
  const relations = await c.query<{ stmt: string }>(
    `select format('alter %s %s owner to %I',
        case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence' when 'f' then 'foreign table' else 'table' end,
        c.oid::regclass, $1::text) as stmt
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
        and pg_get_userbyid(c.relowner) <> $1
        and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i', 'e'))`,
    [owner],
  );
  const routines = await c.query<{ stmt: string }>(
    `select format('alter %s %s(%s) owner to %I', case p.prokind when 'a' then 'aggregate' else 'routine' end,
        p.oid::regproc, pg_get_function_identity_arguments(p.oid), $1::text) as stmt
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'public' and pg_get_userbyid(p.proowner) <> $1
        and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')`,
    [owner],
  );
  const types = await c.query<{ stmt: string }>(
    `select format('alter %s %s owner to %I', case t.typtype when 'd' then 'domain' else 'type' end, t.oid::regtype, $1::text) as stmt
       from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where n.nspname = 'public' and pg_get_userbyid(t.typowner) <> $1
        and (t.typtype in ('e', 'd', 'r') or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
        and not exists (select 1 from pg_depend d where d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e')`,
    [owner],
  );
  return [...relations.rows, ...routines.rows, ...types.rows].map((r) => r.stmt);
}

/** The grants of a product database, in order; the hand-over of foreign-owned objects goes at HAND_OVER. */
const HAND_OVER = "-- hand over what migrate does not own";
function privilegeStatements(database: string, names: RoleNames, hasMigrationsTable: boolean): string[] {
  const app = q(names.app);
  const migrate = q(names.migrate);
  return [
    closeDatabaseSql(database),
    // TEMPORARY: the validation suites keep their scratch rows in temporary tables.
    `grant connect, temporary on database ${q(database)} to ${app}, ${migrate}`,
    `alter schema public owner to ${migrate}`,
    "revoke create on schema public from public",
    `grant usage on schema public to ${app}`,
    HAND_OVER,
    `grant select, insert, update, delete on all tables in schema public to ${app}`,
    `grant usage, select on all sequences in schema public to ${app}`,
    // The migrations' bookkeeping is read by the product (/readyz: the schema version), written by migrations only.
    ...(hasMigrationsTable ? [`revoke insert, update, delete on pgmigrations from ${app}`] : []),
    `alter default privileges for role ${migrate} in schema public grant select, insert, update, delete on tables to ${app}`,
    `alter default privileges for role ${migrate} in schema public grant usage, select on sequences to ${app}`,
  ];
}

/**
 * What a product database's comment says once its grants are applied: a hash of the statements (the role names
 * in them), so that a start finding the same marker skips them, and a release of the agent that changes the
 * grants applies them again. The database name is left out: a restored copy renamed into place keeps its marker.
 */
export function privilegesMarker(names: RoleNames): string {
  const statements = privilegeStatements("<database>", names, true).join(";\n");
  return `plum product grants sha256:${createHash("sha256").update(statements).digest("hex").slice(0, 32)}`;
}

/** The marker the product database carries (its comment), undefined when it has none or does not exist. */
export async function privilegesMarkerOf(server: PgServer, database: string): Promise<string | undefined> {
  const c = await connectAdmin(server);
  try {
    const { rows } = await c.query<{ marker: string | null }>("select shobj_description(oid, 'pg_database') as marker from pg_database where datname = $1", [
      database,
    ]);
    return rows[0]?.marker ?? undefined;
  } finally {
    await c.end();
  }
}

/**
 * The one place a product database gets its ownership and grants: after the agent's migrations, on a restored
 * copy before it is swapped in, on the staging copy, after a release's migrations. Idempotent. Objects a
 * superuser owns (an appliance from before these roles, a restore with --no-owner) are handed to `migrate` one
 * by one, inside this database only. Tables a later migration creates get the app's grants by default privileges.
 * Ends by writing the marker (`privilegesMarker`) into the database's comment, in the same transaction.
 */
export async function applyProductPrivileges(server: PgServer, database: string, names: RoleNames): Promise<{ reassigned: number }> {
  const c = new pg.Client(clientConfig(server, database));
  c.on("error", () => undefined);
  await c.connect();
  try {
    await ensureRolesExist(c, names);
    await c.query("begin");
    const hasMigrationsTable = Boolean((await c.query("select to_regclass('public.pgmigrations') as t")).rows[0].t);
    let reassigned = 0;
    for (const stmt of privilegeStatements(database, names, hasMigrationsTable)) {
      if (stmt !== HAND_OVER) {
        await c.query(stmt);
        continue;
      }
      const handOver = await foreignOwned(c, names.migrate);
      for (const h of handOver) await c.query(h);
      reassigned = handOver.length;
    }
    await c.query(`comment on database ${q(database)} is ${lit(privilegesMarker(names))}`);
    await c.query("commit");
    return { reassigned };
  } catch (err) {
    await c.query("rollback").catch(() => undefined);
    throw new PlumError(`could not give database "${database}" to the roles ${names.migrate} and ${names.app}: ${(err as Error).message}`, {
      hint: `the appliance's PostgreSQL user needs to be a superuser, or a member of ${names.migrate} owning the database (see \`plumctl database roles-sql\`)`,
      cause: err,
    });
  } finally {
    await c.end();
  }
}

/** The configured role names with their passwords (each in its own 0600 file under secrets/, made on first use). */
export function productRolesOf(names: RoleNames, secretsDir: string): ProductRoles {
  return {
    app: { name: names.app, password: ensureRolePassword(secretsDir, names.app) },
    migrate: { name: names.migrate, password: ensureRolePassword(secretsDir, names.migrate) },
  };
}

/**
 * The product database made ready for the product: the roles set up, everything handed to `migrate` (an
 * appliance from before these roles has its tables owned by the superuser), the migrations of `dir` run AS
 * `migrate`, and the grants applied again. The agent's start and `plumctl migrate` beside it. A database whose
 * marker says its grants are this release's set is not given them again unless a migration ran.
 */
export async function migrateProductDatabase(
  server: PgServer,
  database: string,
  roles: ProductRoles,
  opts: { dir: string; log?: Logger },
): Promise<{ ran: string[]; privileges: "applied" | "unchanged" }> {
  const names = { app: roles.app.name, migrate: roles.migrate.name };
  await ensureProductRoles(server, roles);
  const current = (await privilegesMarkerOf(server, database)) === privilegesMarker(names);
  if (!current) await applyProductPrivileges(server, database, names);
  const ran = await migrate({ clientConfig: clientConfig(roleServer(server, roles.migrate), database), dir: opts.dir, log: opts.log });
  if (current && ran.length === 0) {
    opts.log?.debug({ database }, "the product database's grants are this release's set: not applied again");
    return { ran, privileges: "unchanged" };
  }
  await applyProductPrivileges(server, database, names);
  return { ran, privileges: "applied" };
}
