import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import type { Agent } from "../../appliance/agent.ts";
import { AuditLog } from "../../appliance/audit/audit-log.ts";
import { supportBundleWriter, type SupportBundle } from "../../appliance/support/support-bundle.ts";
import { runChecks } from "../../installer/checks/run-checks.ts";
import { runChild } from "../../lib/child-process.ts";
import { loadConfig } from "../../lib/config.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { homeLayout } from "../../lib/paths.ts";
import { itemRedeemer } from "../../product/commands/item-redeemer.ts";
import { signInFirstAdmin } from "../support/console-users.ts";
import type { FreshDatabases } from "../support/databases.ts";
import { award, buildItem, buildMerchant, buildParticipant } from "../support/factories.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { productContextOn } from "../support/restore-fixtures.ts";

/** The spellings a leak could take, computed here independently of the redactor. */
function spellings(value: string): string[] {
  const bytes = Buffer.from(value, "utf8");
  return [value, bytes.toString("base64"), bytes.toString("base64url"), bytes.toString("hex"), encodeURIComponent(value)];
}

/** Unpack with the system's tar (what the vendor will use) and read every member. */
async function unpack(file: string): Promise<Map<string, Buffer>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "plum-bundle-"));
  try {
    await runChild(["tar", "-x", "-z", "-f", file, "-C", dir], { timeoutMs: 30_000 });
    const members = new Map<string, Buffer>();
    const walk = (rel: string) => {
      for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
        const name = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(name);
        else members.set(name, readFileSync(path.join(dir, name)));
      }
    };
    walk("");
    return members;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("support bundle: no secret the appliance holds leaves in it", function () {
  this.timeout(90_000);
  let agent: Agent;
  let dbs: FreshDatabases;
  let stopAgent: () => Promise<void>;
  let env: Record<string, string>;
  const out = mkdtempSync(path.join(os.tmpdir(), "plum-support-"));
  /** Every secret planted, by the kind redactions.json must name. */
  const planted: Record<string, string> = {};
  let bundle: SupportBundle;
  let members: Map<string, Buffer>;

  before(async () => {
    ({ agent, dbs, stop: stopAgent } = await startInProcessAgent());
    const layout = homeLayout(agent.config.home);
    env = { PLUM_HOME: agent.config.home, ...dbs.env };

    // The secret files the agent made at its start (random, so distinctive), the database URL's password.
    for (const name of readdirSync(layout.secretsDir)) {
      if (name.endsWith(".pub.pem")) continue;
      planted[name.replace(/\.pem$/, "")] = readFileSync(path.join(layout.secretsDir, name), "utf8").trim();
    }
    expect(Object.keys(planted)).to.include.members(["session-key", "postgres-password", "restic-password", "appliance-signing-key", "control-token"]);
    expect(Object.keys(planted).some((k) => /^postgres-role-.*-password$/.test(k))).to.equal(true);
    planted["database-url-password"] = process.env.PLUM_TEST_PG_PASSWORD!;
    expect(planted["database-url-password"]).to.have.length.above(8);
    // plum.yaml names the URL with its password, as a client's own PostgreSQL would be configured.
    const yaml = readFileSync(layout.configFile, "utf8").replace(/^ {2}# url: .*$/m, `  url: ${dbs.env.PLUM_DATABASE_URL}`);
    writeFileSync(layout.configFile, yaml);

    // The product's own secrets, made by its commands: a merchant's API key, a voucher's share token and code.
    const sequelize = openSequelize(clientConfig(dbs.server, dbs.product), { poolMax: 5 });
    try {
      const ctx = productContextOn(sequelize);
      const { merchant, apiKey } = await buildMerchant(ctx);
      planted["merchant-api-key"] = apiKey;
      const participant = await buildParticipant(ctx);
      await award(ctx, participant.id, 500);
      const item = await buildItem(ctx, merchant.id);
      const { voucher } = await itemRedeemer({
        ctx,
        actor: { id: -1, username: "tester", role: "participant" },
        input: { participantId: participant.id, itemId: item.id, requestKey: randomUUID() },
      });
      planted["voucher-share-token"] = voucher.shareToken;
      planted["voucher-code"] = voucher.code;
    } finally {
      await sequelize.close();
    }
    // A console session, signed in through the console (only its hash is in plum_ops).
    const admin = await signInFirstAdmin(agent);
    planted["console-session"] = admin.cookies.get("plum_ops_session")!;
    expect(planted["console-session"]).to.have.length.above(20);

    // Leaks as a careless log line or audit detail would hold them: raw, base64, hex, in URLs and headers.
    const leaks = Object.entries(planted).flatMap(([kind, value]) => spellings(value).map((s) => `{"level":30,"kind":"${kind}","leaked":"${s}"}`));
    leaks.push(
      `GET /v/${planted["voucher-share-token"]} 200`,
      `cookie: plum_ops_session=${planted["console-session"]}; path=/`,
      `Authorization: Bearer ${planted["control-token"]}`,
      `connecting to ${dbs.env.PLUM_DATABASE_URL}`,
      planted["appliance-signing-key"],
      `{"key":${JSON.stringify(planted["appliance-signing-key"])}}`,
    );
    writeFileSync(path.join(layout.logsDir, "planted.log"), leaks.join("\n") + "\n");
    const opsSequelize = openSequelize(clientConfig(dbs.server, dbs.ops), { poolMax: 1 });
    try {
      await new AuditLog(opsSequelize).append({ actor: "system", action: "test.leak", detail: { note: `a key ${planted["merchant-api-key"]} in a detail` } });
    } finally {
      await opsSequelize.close();
    }

    const config = loadConfig(env);
    const started = Date.now();
    bundle = await supportBundleWriter({ config, dir: out, env, doctor: () => runChecks("doctor", { config }) });
    // A bundle is tails and summaries: it is made in well under the time a vendor waits for it.
    expect(Date.now() - started).to.be.below(10_000);
    members = await unpack(bundle.file);
  });

  after(async () => {
    await stopAgent?.();
    rmSync(out, { recursive: true, force: true });
  });

  it("is a .tar.gz named for the host and the time, mode 0600, with every part collected while the agent runs", () => {
    expect(path.basename(bundle.file)).to.match(/^plum-support-[A-Za-z0-9._-]+-\d{8}T\d{6}Z\.tar\.gz$/);
    expect(statSync(bundle.file).mode & 0o777).to.equal(0o600);
    expect([...members.keys()]).to.include.members([
      "versions.json",
      "host.json",
      "config/plum.yaml",
      "config/effective.yaml",
      "doctor.json",
      "doctor.txt",
      "logs/planted.log",
      "logs/index.json",
      "upgrades/upgrades.json",
      "upgrades/journal.json",
      "backups/catalogue.json",
      "audit/last-rows.json",
      "metrics.txt",
      "releases.json",
      "collection.json",
      "redactions.json",
    ]);
    expect(
      [...members.keys()].some((m) => m.startsWith("logs/instances/")),
      "the product instance's log",
    ).to.equal(true);
    const versions = JSON.parse(members.get("versions.json")!.toString());
    expect(versions.node).to.equal(process.version);
    expect(versions.restic).to.match(/^restic \d/);
    expect(JSON.parse(members.get("doctor.json")!.toString()).map((r: { id: string }) => r.id)).to.include("disk-space");
    expect(members.get("metrics.txt")!.toString()).to.include("# TYPE");
    const audit = JSON.parse(members.get("audit/last-rows.json")!.toString()) as Array<{ action: string }>;
    expect(audit.map((r) => r.action)).to.include("test.leak");
    const collection = JSON.parse(members.get("collection.json")!.toString());
    const skipped = collection.collectors.filter((c: { outcome: string }) => c.outcome !== "collected").map((c: { collector: string }) => c.collector);
    expect(skipped).to.have.members(["docker engine", "status"]); // the process runtime; status is not built yet
  });

  it("holds none of the planted secrets' bytes, raw, base64 or hex, in any member", () => {
    const found: string[] = [];
    for (const [kind, value] of Object.entries(planted))
      for (const s of spellings(value))
        for (const [name, content] of members) if (content.includes(s)) found.push(`${kind} (${s === value ? "raw" : "encoded"}) in ${name}`);
    const pemBody = planted["appliance-signing-key"]
      .split("\n")
      .filter((l) => !l.startsWith("-----"))
      .join("");
    for (const [name, content] of members) if (content.includes(pemBody)) found.push(`the signing key's body in ${name}`);
    expect(found).to.deep.equal([]);
  });

  it("names in redactions.json each place it masked, by kind and count, never the value", () => {
    const { redactions } = JSON.parse(members.get("redactions.json")!.toString()) as { redactions: Array<{ member: string; kind: string; count: number }> };
    const kindsIn = (member: string) => new Set(redactions.filter((r) => r.member === member && r.count > 0).map((r) => r.kind));
    expect([...kindsIn("logs/planted.log")]).to.include.members(Object.keys(planted));
    expect([...kindsIn("config/plum.yaml")]).to.include("database-url-password");
    expect([...kindsIn("audit/last-rows.json")]).to.include("merchant-api-key");
    expect(bundle.masked).to.equal(redactions.reduce((n, r) => n + r.count, 0));
  });

  it("is still made when the databases cannot be reached, and says what it could not collect and why", async () => {
    const unreachable = { ...env, PLUM_DATABASE_URL: dbs.env.PLUM_DATABASE_URL.replace(/:(\d+)\//, ":1/") };
    const down = await supportBundleWriter({ config: loadConfig(unreachable), out: path.join(out, "down.tar.gz"), env: unreachable });
    const unpacked = await unpack(down.file);
    const collection = JSON.parse(unpacked.get("collection.json")!.toString());
    const upgrades = collection.collectors.find((c: { collector: string }) => c.collector === "upgrades");
    expect(upgrades.outcome).to.equal("skipped");
    expect(upgrades.reason).to.match(/cannot reach database .* ECONNREFUSED/);
    expect(unpacked.has("logs/planted.log")).to.equal(true);
    // Without the databases the session and share tokens are not known by value: the file secrets and the patterns still hold.
    const log = unpacked.get("logs/planted.log")!;
    for (const kind of ["control-token", "restic-password", "appliance-signing-key", "database-url-password", "merchant-api-key"])
      for (const s of spellings(planted[kind]).slice(0, 1)) expect(log.includes(s), kind).to.equal(false);
  });
});
