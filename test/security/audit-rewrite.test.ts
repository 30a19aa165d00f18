import { expect } from "chai";
import { verify } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { QueryTypes } from "sequelize";
import type { Agent } from "../../appliance/agent.ts";
import { anchorSettingsOf } from "../../lib/chain-anchors.ts";
import { ChainCheckpoints } from "../../lib/chain-checkpoints.ts";
import type { PlumConfig } from "../../lib/config.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { EvidenceLog } from "../../backup/evidence/evidence-log.ts";
import { canonicalJson, chainHash, GENESIS_HASH } from "../../lib/hash-chain.ts";
import { chainEvents } from "../../lib/hash-chained-log.ts";
import { createLogger } from "../../lib/logger.ts";
import { ensureSecrets } from "../../lib/secrets.ts";
import { waitFor } from "../../lib/wait.ts";
import { signInFirstAdmin } from "../support/console-users.ts";
import type { FreshDatabases } from "../support/databases.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { plumctl } from "../support/plumctl.ts";
import type { WebClient } from "../support/web-client.ts";

/** The anchor file's lines as JSON (read without the code under test, so this file also runs against older trees). */
type AnchorLine = { seq: number; chain: string; lastId: number; lastHash: string; at: string };
function anchorFile(agent: Agent): string {
  return path.join(agent.config.home, "anchors", "chain-anchors.jsonl");
}
function anchorLines(agent: Agent): AnchorLine[] {
  const file = anchorFile(agent);
  return existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as AnchorLine)
    : [];
}

/** Checkpoint settings for a test agent (set on a tree without them, they are inert). */
function anchorsEvery(rows: number) {
  return (config: PlumConfig) => {
    Object.assign(config, { audit: { ...config.audit, anchors: { everyRows: rows, everySeconds: 3600 } } });
    config.security.loginRateLimitPerMinute = 1000;
  };
}

/**
 * The attack from issue 11, as the database superuser: in one transaction, switch the append-only trigger off
 * with session_replication_role, keep the first `keep` rows, add a forged password reset, renumber and
 * recompute every hash the way lib/hash-chain.ts does, and set the chain's head. The chain then verifies.
 */
async function rewriteAuditChain(dbs: FreshDatabases, keep: number): Promise<number> {
  const sql = new pg.Client(clientConfig(dbs.server, dbs.ops));
  await sql.connect();
  try {
    await sql.query("begin");
    await sql.query("set local session_replication_role = replica");
    const { rows } = await sql.query<{ at: Date; actor: string; action: string; target: string | null; outcome: string; detail: unknown }>(
      "select at, actor, action, target, outcome, detail from audit_log order by id",
    );
    const kept = rows.slice(0, keep);
    kept.push({ at: new Date(), actor: "user:admin", action: "user.password-reset", target: "user:admin", outcome: "success", detail: {} });
    await sql.query("delete from audit_log");
    let prev = GENESIS_HASH;
    for (const [i, r] of kept.entries()) {
      const id = i + 1;
      const hash = chainHash(prev, { id, at: r.at.toISOString(), actor: r.actor, action: r.action, target: r.target, outcome: r.outcome, detail: r.detail });
      await sql.query("insert into audit_log (id, at, actor, action, target, outcome, detail, prev_hash, hash) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)", [
        id,
        r.at,
        r.actor,
        r.action,
        r.target,
        r.outcome,
        JSON.stringify(r.detail),
        prev,
        hash,
      ]);
      prev = hash;
    }
    await sql.query("update hash_chain_heads set last_id = $1, last_hash = $2 where chain = 'audit_log'", [kept.length, prev]);
    await sql.query("commit");
    return kept.length;
  } finally {
    await sql.end();
  }
}

describe("security: an audit chain rewritten by the database superuser is caught by its anchors", function () {
  let agent: Agent;
  let dbs: FreshDatabases;
  let stop: () => Promise<void>;
  let admin: WebClient;
  const env = () => ({ ...dbs.env, PLUM_HOME: agent.config.home });

  before(async () => {
    ({ agent, dbs, stop } = await startInProcessAgent(anchorsEvery(1000)));
    admin = await signInFirstAdmin(agent);
  });
  after(() => stop());

  it("`plumctl audit verify` and the console name the anchor and the row counts after the rewrite", async () => {
    for (let i = 1; i <= 8; i++) await agent.audit.append({ actor: "user:admin", action: "user.create", target: `user:u${i}`, detail: { role: "operator" } });
    // An export is a checkpoint: what was handed out is anchored before it leaves.
    expect((await admin.get("/audit/export.csv")).status).to.equal(200);
    const before = await agent.audit.list({ limit: 1 });

    const rows = await rewriteAuditChain(dbs, 3);
    expect(await agent.audit.verify(), "the rewritten chain verifies on its own").to.include({ ok: true, checked: rows });

    const cli = await plumctl(["audit", "verify"], env());
    expect(cli.code, cli.stdout + cli.stderr).to.equal(1);
    const anchor = anchorLines(agent)
      .filter((a) => a.chain === "audit_log")
      .at(-1)!;
    expect(anchor.lastId, "the export's checkpoint covers the rows before it").to.equal(before[0].id - 1);
    const said = `rows 1–${anchor.lastId} anchored at ${anchor.at} (anchor #${anchor.seq}); the database now holds ${rows} rows whose head does not match anchor #${anchor.seq}`;
    expect(cli.stdout.split("\n")[0]).to.equal(`audit log REWRITTEN: ${said}; no earlier anchor matches: the chain was rewritten from its start`);

    const page = await admin.get("/audit?verify=1");
    expect(page.status).to.equal(200);
    expect(page.text).to.include(`The chain was rewritten: ${said}`);
    expect(page.text).not.to.include("The chain verifies");
  });

  it("the agent's checkpoints refuse to sign the rewritten chain, and raise an alarm", async () => {
    const signed = anchorLines(agent).filter((a) => a.chain === "audit_log");
    const alarms: string[] = [];
    chainEvents(agent.sequelize).on("rewrite", (chain, message) => alarms.push(`${chain}: ${message}`));
    const checkpoints = new ChainCheckpoints({
      sequelize: agent.sequelize,
      settings: anchorSettingsOf(agent.config.home, ensureSecrets(path.join(agent.config.home, "secrets"))),
      everyRows: 1000,
      everySeconds: 3600,
      log: createLogger("test-checkpoints", { level: "silent" }),
    });
    await checkpoints.start();
    await checkpoints.stop();
    expect(
      anchorLines(agent).filter((a) => a.chain === "audit_log"),
      "no checkpoint of the forged head",
    ).to.deep.equal(signed);
    expect(alarms).to.deep.equal([
      `audit_log: audit_log no longer holds row ${signed.at(-1)!.lastId} as its last checkpoint signed it: the chain was rewritten in the database; no further checkpoint of it is taken`,
    ]);
  });

  it("an evidence export carries the evidence chain's checkpoint, signed by the appliance key", async () => {
    const evidence = new EvidenceLog(agent.sequelize);
    await evidence.record({ kind: "check", outcome: "success", repository: "primary", detail: { subset: "1/10" } });
    const last = await evidence.record({ kind: "drill", outcome: "success", setId: "s1", detail: { rtoSeconds: 30 } });
    const today = new Date().toISOString().slice(0, 10);
    const res = await admin.get(`/evidence/export?from=${today}&to=${today}&format=json`, "application/json");
    expect(res.status).to.equal(200);
    const report = JSON.parse(res.text) as { chain: { lastId: number; lastHash: string; checkpoint?: AnchorLine & Record<string, unknown> } };
    const checkpoint = report.chain.checkpoint;
    expect(checkpoint, "the export's chain section names its checkpoint").to.include({
      chain: "backup_evidence",
      lastId: last.id,
      lastHash: last.hash,
      reason: "export",
    });
    expect(checkpoint).to.deep.equal(anchorLines(agent).at(-1), "the same line as in the anchor file");
    const { signature, ...fields } = checkpoint!;
    const publicKey = readFileSync(path.join(agent.config.home, "secrets", "appliance-signing-key.pub.pem"), "utf8");
    const payload = Buffer.from(`plum-chain-anchor/1\n${canonicalJson(fields)}`);
    expect(verify(null, payload, publicKey, Buffer.from(String(signature), "base64")), "signed by the appliance key").to.equal(true);
    expect(
      verify(null, Buffer.from(`plum-chain-anchor/1\n${canonicalJson({ ...fields, lastId: 1 })}`), publicKey, Buffer.from(String(signature), "base64")),
    ).to.equal(false);
  });
});

describe("security: an edited anchor file is caught, line by line", function () {
  let agent: Agent;
  let dbs: FreshDatabases;
  let stop: () => Promise<void>;
  let admin: WebClient;
  let original: string;
  const env = () => ({ ...dbs.env, PLUM_HOME: agent.config.home });

  /** The anchors and the database agree on the file's end, and no row-count checkpoint is due. */
  async function settled(): Promise<true | undefined> {
    const head = (await agent.audit.list({ limit: 1 }))[0].id;
    const lines = anchorLines(agent);
    const audit = lines.filter((a) => a.chain === "audit_log").at(-1);
    const [recorded] = await agent.sequelize.query<{ last_id: string }>("select last_id from hash_chain_heads where chain = 'chain_anchors'", {
      type: QueryTypes.SELECT,
    });
    return audit && head - audit.lastId < 5 && Number(recorded?.last_id) === lines.at(-1)?.seq ? true : undefined;
  }

  before(async () => {
    ({ agent, dbs, stop } = await startInProcessAgent(anchorsEvery(5)));
    admin = await signInFirstAdmin(agent);
    for (let i = 1; i <= 16; i++) await agent.audit.append({ actor: "user:admin", action: "user.create", target: `user:e${i}`, detail: {} });
    await waitFor("three row-count checkpoints of the audit log", async () => (anchorLines(agent).length >= 3 ? true : undefined), { timeoutMs: 20_000 });
    await waitFor("the checkpoints to settle", settled, { timeoutMs: 20_000 });
    original = readFileSync(anchorFile(agent), "utf8");
  });
  afterEach(() => writeFileSync(anchorFile(agent), original));
  after(() => stop());

  it("verifies the untouched file and the chain against it", async () => {
    const cli = await plumctl(["audit", "verify"], env());
    expect(cli.code, cli.stdout).to.equal(0);
    const newest = anchorLines(agent)
      .filter((a) => a.chain === "audit_log")
      .at(-1)!;
    expect(cli.stdout).to.match(
      new RegExp(`^audit log verified: \\d+ rows, chain intact\\n  anchors: rows 1–${newest.lastId} match anchor #${newest.seq} \\(`),
    );
  });

  it("names the edited line: its signature fails and the next line's link breaks", async () => {
    const lines = original.split("\n");
    const edited = JSON.parse(lines[1]) as AnchorLine;
    lines[1] = JSON.stringify({ ...edited, lastId: edited.lastId - 1 });
    writeFileSync(anchorFile(agent), lines.join("\n"));
    const cli = await plumctl(["audit", "verify"], env());
    expect(cli.code, cli.stdout).to.equal(1);
    expect(cli.stdout).to.include(`anchor file ${anchorFile(agent)} does NOT verify (2 problems):`);
    expect(cli.stdout).to.include(`  - line 2 (anchor #2, ${edited.chain} row ${edited.lastId - 1}) was edited: its signature does not match its content\n`);
    expect(cli.stdout).to.match(/ {2}- line 3 \(anchor #3, \w+ row \d+\) does not link to line 2: a line before it was edited, replaced or inserted\n/);
    const page = await admin.get("/audit?verify=1");
    expect(page.text).to.include("The anchor file does not verify");
    expect(page.text).to.include(`line 2 (anchor #2, ${edited.chain} row ${edited.lastId - 1}) was edited: its signature does not match its content`);
  });

  it("names a deleted last line from the head the database recorded", async () => {
    const lines = original.split("\n").filter(Boolean);
    writeFileSync(anchorFile(agent), lines.slice(0, -1).join("\n") + "\n");
    const cli = await plumctl(["audit", "verify"], env());
    expect(cli.code, cli.stdout).to.equal(1);
    expect(cli.stdout).to.include(
      `  - the anchor file ends at anchor #${lines.length - 1} (line ${lines.length - 1}), but the database recorded anchor #${lines.length} as the newest: the last line was deleted\n`,
    );
  });

  it("names a deleted middle line and lines out of order", async () => {
    const lines = original.split("\n").filter(Boolean);
    writeFileSync(anchorFile(agent), [lines[0], lines[2], ...lines.slice(3)].join("\n") + "\n");
    const deleted = await plumctl(["audit", "verify"], env());
    expect(deleted.code).to.equal(1);
    expect(deleted.stdout).to.match(/ {2}- line 2 \(anchor #3, \w+ row \d+\) follows anchor #1: anchor #2 was deleted\n/);
    writeFileSync(anchorFile(agent), [lines[0], lines[2], lines[1], ...lines.slice(3)].join("\n") + "\n");
    const swapped = await plumctl(["audit", "verify"], env());
    expect(swapped.code).to.equal(1);
    expect(swapped.stdout).to.match(/ {2}- line 3 \(anchor #2, \w+ row \d+\) follows anchor #3: the lines are out of order\n/);
  });
});
