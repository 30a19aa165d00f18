import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ConnectionOptions } from "node:tls";
import { clientConfigFromUrl, connectionUrl, nodePgSsl, parseDatabaseUrl, pgEnvironment, type SslMode } from "../../lib/db/connection-url.ts";
import { PlumError } from "../../lib/errors.ts";

/** What node-pg is told, in words a table can hold. */
function sslShape(ssl: false | ConnectionOptions): string {
  if (ssl === false) return "no TLS";
  const caCheck = ssl.rejectUnauthorized === false ? "no certificate check" : ssl.ca ? "CA from sslrootcert" : "CA from Node's list";
  const hostCheck = ssl.rejectUnauthorized === false ? "" : ssl.checkServerIdentity ? ", host name not checked" : ", host name checked";
  return `TLS, ${caCheck}${hostCheck}`;
}

describe("PostgreSQL connection URLs (libpq's meanings)", () => {
  let dir: string;
  let ca: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "plum-url-"));
    ca = path.join(dir, "root.crt");
    writeFileSync(ca, "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const MODES: Array<[query: string, mode: SslMode, nodePg: string]> = [
    ["", "prefer", "no TLS"],
    ["?sslmode=disable", "disable", "no TLS"],
    ["?sslmode=allow", "allow", "no TLS"],
    ["?sslmode=prefer", "prefer", "no TLS"],
    ["?sslmode=require", "require", "TLS, no certificate check"],
    ["?sslmode=verify-ca", "verify-ca", "TLS, CA from Node's list, host name not checked"],
    ["?sslmode=verify-full", "verify-full", "TLS, CA from Node's list, host name checked"],
  ];
  for (const [query, mode, nodePg] of MODES) {
    it(`sslmode ${query || "(none)"}: ${mode} → node-pg ${nodePg}, PGSSLMODE=${mode}`, () => {
      const conn = parseDatabaseUrl(`postgres://plum:pw@db.example:5432/plum${query}`);
      expect(conn.sslmode).to.equal(mode);
      expect(sslShape(nodePgSsl(conn))).to.equal(nodePg);
      expect(pgEnvironment(conn).PGSSLMODE).to.equal(mode);
    });
  }

  const WITH_ROOT_CERT: Array<[SslMode, string]> = [
    ["require", "TLS, CA from sslrootcert, host name not checked"], // libpq: require with a root certificate is verify-ca
    ["verify-ca", "TLS, CA from sslrootcert, host name not checked"],
    ["verify-full", "TLS, CA from sslrootcert, host name checked"],
  ];
  for (const [mode, nodePg] of WITH_ROOT_CERT) {
    it(`sslmode=${mode} with sslrootcert → node-pg ${nodePg}, PGSSLROOTCERT for libpq`, () => {
      const conn = parseDatabaseUrl(`postgres://plum:pw@db.example/plum?sslmode=${mode}&sslrootcert=${encodeURIComponent(ca)}`);
      expect(conn.sslrootcert).to.equal(ca);
      const ssl = nodePgSsl(conn) as ConnectionOptions;
      expect(sslShape(ssl)).to.equal(nodePg);
      expect(ssl.ca).to.contain("BEGIN CERTIFICATE");
      expect(pgEnvironment(conn)).to.include({ PGSSLMODE: mode, PGSSLROOTCERT: ca });
    });
  }

  const DECODED: Array<[url: string, expected: Record<string, unknown>]> = [
    ["postgres://db.example/plum", { host: "db.example", port: 5432, user: "", password: "", database: "plum" }],
    ["postgresql://u@db.example:6432", { host: "db.example", port: 6432, user: "u", password: "", database: "" }],
    [
      "postgres://us%40er:p%40ss%3Aw%2Fo%25rd%20x@db.example:5433/my%20db",
      { host: "db.example", port: 5433, user: "us@er", password: "p@ss:w/o%rd x", database: "my db" },
    ],
    ["postgres://u:p@%2Fvar%2Frun%2Fpostgresql/plum", { host: "/var/run/postgresql", database: "plum" }],
    ["postgres://u:p@[::1]:5432/plum", { host: "::1", port: 5432 }],
    ["postgres://u:p:with:colons@h/d", { user: "u", password: "p:with:colons" }],
    [
      "postgres:///plum?host=%2Ftmp&port=5440&user=a%20b&password=x%26y&dbname=other",
      { host: "/tmp", port: 5440, user: "a b", password: "x&y", database: "other" },
    ],
  ];
  for (const [url, expected] of DECODED) {
    it(`decodes ${url.replace(/:[^:@/]*@/, ":***@")}`, () => {
      expect(parseDatabaseUrl(url)).to.include(expected);
    });
  }

  const REFUSED: Array<[url: string, message: string]> = [
    ["mysql://u:secret@h/d", "PLUM_X is not a postgres:// URL"],
    ["postgres://u:secret@h:54x2/d", 'PLUM_X has the port "54x2", which is not a number from 1 to 65535'],
    ["postgres://u:secret@h:70000/d", 'PLUM_X has the port "70000", which is not a number from 1 to 65535'],
    ["postgres://u:secret@/d", "PLUM_X names no host"],
    ["postgres://u:secret@h1,h2/d", "PLUM_X names several hosts (h1,h2): only one server is supported"],
    ["postgres://u:secret@h/d?sslmode=verify", "PLUM_X has sslmode=verify"],
    ["postgres://u:secret@h/d?application_name=x", 'PLUM_X has the query parameter "application_name", which is not supported'],
    ["postgres://u%zz:secret@h/d", "PLUM_X has a user name (u%zz) that is not validly percent-encoded"],
    ["postgres://u:sec%zzret@h/d", "PLUM_X has a password that is not validly percent-encoded"],
    ["postgres://u@h/d?password=sec%zzret", "PLUM_X has a password parameter that is not validly percent-encoded"],
    ["postgres://u:secret@h%zz/d", "PLUM_X has a host (h%zz) that is not validly percent-encoded"],
    ["postgres://u:secret@h/d%zz", "PLUM_X has a database name (d%zz) that is not validly percent-encoded"],
  ];
  for (const [url, message] of REFUSED) {
    it(`refuses ${url.replace(/secret/, "***")} naming the bad part, never the password`, () => {
      const err = (() => {
        try {
          parseDatabaseUrl(url, "PLUM_X");
        } catch (e) {
          return e as PlumError;
        }
      })();
      expect(err).to.be.instanceOf(PlumError);
      expect(err!.message).to.equal(message);
      expect(`${err!.message} ${err!.hint}`).to.not.match(/sec(%zz)?ret/);
    });
  }

  it("names an unreadable sslrootcert when the connection is opened", () => {
    const conn = parseDatabaseUrl("postgres://u@h/d?sslmode=verify-full&sslrootcert=/nonexistent/root.crt");
    expect(() => nodePgSsl(conn)).to.throw(PlumError, "cannot read the sslrootcert /nonexistent/root.crt");
  });

  it("writes URLs that read back to the same connection, every part encoded", () => {
    const server = { host: "db.example", port: 5433, user: "us@er", password: "p@ss:w/o%rd", sslmode: "verify-full" as const, sslrootcert: ca };
    const url = connectionUrl(server, "my db");
    expect(parseDatabaseUrl(url)).to.deep.equal({ ...server, database: "my db" });
    expect(parseDatabaseUrl(connectionUrl({ ...server, host: "::1", sslrootcert: undefined }, "d"))).to.include({ host: "::1", sslmode: "verify-full" });
    expect(parseDatabaseUrl(connectionUrl({ ...server, host: "/var/run/postgresql" }, "d")).host).to.equal("/var/run/postgresql");
  });

  it("gives node-pg and libpq the same server, user and password (none in libpq's env when the URL has none)", () => {
    const config = clientConfigFromUrl("postgres://u:p%20w@h:5440/plum?sslmode=require");
    expect(config).to.include({ host: "h", port: 5440, user: "u", password: "p w", database: "plum" });
    expect(config.ssl).to.deep.equal({ rejectUnauthorized: false });
    expect(pgEnvironment(parseDatabaseUrl("postgres://u:p%20w@h:5440/plum"))).to.include({ PGHOST: "h", PGPORT: "5440", PGUSER: "u", PGPASSWORD: "p w" });
    expect(pgEnvironment(parseDatabaseUrl("postgres://u@h/plum"))).to.not.have.property("PGPASSWORD");
  });
});
