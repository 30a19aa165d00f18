import { expect } from "chai";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import request from "supertest";
import type { Agent } from "../../appliance/agent.ts";
import type { BackupContext } from "../../backup/backup-context.ts";
import { EvidenceLog } from "../../backup/evidence/evidence-log.ts";
import { evidenceExporter, type EvidenceFormat } from "../../backup/evidence/evidence-exporter.ts";
import type { EvidencePin } from "../../backup/evidence/evidence-pin.ts";
import type { EvidenceReport } from "../../backup/evidence/evidence-report.ts";
import { publicKeyFingerprint } from "../../backup/evidence/evidence-signature.ts";
import { verifyEvidenceBytes, verifyEvidenceFile } from "../../backup/evidence/evidence-verifier.ts";
import { homeLayout } from "../../lib/paths.ts";
import { ensureSecrets, signingPublicKeyFile, type Secrets } from "../../lib/secrets.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { startBackupEnv } from "../support/backup-env.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { plumctl } from "../support/plumctl.ts";
import { WebClient } from "../support/web-client.ts";

const run = promisify(execFile);
const H = 3600_000;
const CONTROL_NAMES = [
  "Backup within RPO",
  "Retention meets policy",
  "Off-site copy age",
  "Integrity check passed",
  "Restore drill passed",
  "Encryption on",
  "Append-only storage",
];

/** A set in the catalogue, as the backup agent leaves it after a good run and a copy. */
function buildSetRow(id: string, hoursAgo: number, overrides: Record<string, unknown> = {}) {
  const startedAt = new Date(Date.now() - hoursAgo * H);
  const snapshots = (prefix: string) => ({
    "db-plum": `${prefix}1${id}`.padEnd(8, "0"),
    "db-ops": `${prefix}2${id}`.padEnd(8, "0"),
    files: `${prefix}3${id}`.padEnd(8, "0"),
  });
  return {
    id,
    kind: "scheduled" as const,
    status: "succeeded" as const,
    startedAt,
    finishedAt: new Date(startedAt.getTime() + 60_000),
    appVersion: APP_VERSION,
    schemaVersion: "test",
    primarySnapshots: snapshots("a"),
    secondarySnapshots: snapshots("b"),
    copiedAt: new Date(startedAt.getTime() + 120_000),
    bytesAdded: "1048576",
    bytesProcessed: "5242880",
    startedBy: "scheduler",
    ...overrides,
  };
}

/** A run of the agent's work as evidence: two good sets copied off-site, a failed one, checks, retention, a slow drill. */
async function recordHistory(ctx: BackupContext): Promise<void> {
  const older = await ctx.sets.create(buildSetRow("s1", 30));
  const newer = await ctx.sets.create(buildSetRow("s2", 1));
  await ctx.sets.create(buildSetRow("s3", 0.5, { status: "failed", secondarySnapshots: null, copiedAt: null, error: "pg_dump exited 1" }));
  for (const set of [older, newer]) {
    await ctx.evidence.record({
      kind: "backup",
      outcome: "success",
      setId: set.id,
      repository: "primary",
      detail: {
        startedAt: set.startedAt.toISOString(),
        finishedAt: set.finishedAt!.toISOString(),
        bytesAdded: 1048576,
        bytesProcessed: 5242880,
        snapshots: set.primarySnapshots,
      },
    });
    await ctx.evidence.record({
      kind: "copy",
      outcome: "success",
      setId: set.id,
      repository: "secondary",
      detail: { snapshots: set.secondarySnapshots, original: set.primarySnapshots },
    });
  }
  await ctx.evidence.record({ kind: "backup", outcome: "failure", setId: "s3", repository: "primary", detail: { error: "pg_dump exited 1" } });
  await ctx.evidence.record({ kind: "check", outcome: "success", repository: "primary", detail: { subset: "4/10", output: ["no errors were found"] } });
  await ctx.evidence.record({ kind: "check", outcome: "success", repository: "secondary", detail: { subset: "4/10", output: ["no errors were found"] } });
  await ctx.evidence.record({ kind: "forget", outcome: "success", repository: "primary", detail: { kept: ["s1", "s2"], forgotten: [] } });
  // Over the 60-minute RTO: the drill control fails, so the exports show both verdicts.
  await ctx.evidence.record({
    kind: "drill",
    outcome: "success",
    setId: "s2",
    detail: {
      setId: "s2",
      startedAt: new Date(Date.now() - 2 * H).toISOString(),
      finishedAt: new Date().toISOString(),
      rtoSeconds: 4000,
      verified: { tables: 12, files: 3 },
      suites: ["ledger"],
    },
  });
}

function flipByte(file: string, at: number): void {
  const bytes = readFileSync(file);
  bytes[at] ^= 0x01;
  writeFileSync(file, bytes);
}

describe("backup evidence", function () {
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let secrets: Secrets;
  let pin: EvidencePin;
  let cliEnv: Record<string, string>;
  let dir: string;
  const from = new Date(Date.now() - 7 * 24 * H);
  const to = new Date(Date.now() + H);

  const exportTo = async (format: EvidenceFormat, name: string) => {
    const out = await evidenceExporter({
      ctx: env.ctx,
      from,
      to,
      format,
      signingKeyPem: secrets.signingPrivateKeyPem,
      publicKeyPem: secrets.signingPublicKeyPem,
    });
    const file = path.join(dir, name);
    writeFileSync(file, out.body);
    if (out.signature) writeFileSync(`${file}.sig`, out.signature);
    return { ...out, file };
  };

  before(async () => {
    env = await startBackupEnv({ secondary: true });
    secrets = ensureSecrets(homeLayout(env.home).secretsDir);
    pin = { fingerprint: publicKeyFingerprint(secrets.signingPublicKeyPem), source: "the test's appliance key" };
    cliEnv = { PLUM_HOME: env.home, ...env.dbs.env, PLUM_BACKUP_SECONDARY: env.ctx.repos.secondary!.location };
    for (const repo of [env.ctx.repos.primary, env.ctx.repos.secondary!])
      await run("restic", ["init", "-r", repo.location, "--password-file", repo.passwordFile]);
    dir = mkdtempSync(path.join(tmpdir(), "plum-evidence-"));
    await recordHistory(env.ctx);
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await env.stop();
  });

  it("exports JSON holding the policy, runs, checks, drills, controls and chain-linked records, and it verifies offline", async () => {
    const { file, report } = await exportTo("json", "period.json");
    const doc = JSON.parse(readFileSync(file, "utf8")) as EvidenceReport;
    expect(doc.format).to.equal("plum-backup-evidence");
    expect(doc.period).to.include({ from: from.toISOString(), to: to.toISOString() });
    expect(doc.policy).to.deep.equal({ ...report.policy, rpoHours: 6, rtoMinutes: 60 });
    expect(doc.runs.map((r) => [r.setId, r.status, r.bytesAdded])).to.deep.equal([
      ["s1", "succeeded", 1048576],
      ["s2", "succeeded", 1048576],
      ["s3", "failed", 1048576],
    ]);
    expect(doc.runs[1].primarySnapshots).to.have.keys("db-plum", "db-ops", "files");
    expect(doc.runs[1].secondarySnapshots).to.have.keys("db-plum", "db-ops", "files");
    expect(doc.checks.map((c) => [c.repository, c.outcome, c.subset])).to.deep.equal([
      ["primary", "success", "4/10"],
      ["secondary", "success", "4/10"],
    ]);
    expect(doc.drills[0]).to.include({ setId: "s2", rtoSeconds: 4000, rtoTargetSeconds: 3600 });
    expect(doc.encryption.status).to.equal("on");
    expect(doc.repositories.map((r) => [r.role, r.source, r.configFile, r.keys.length])).to.deep.equal([
      ["primary", "repository-files", "encrypted", 1],
      ["secondary", "repository-files", "encrypted", 1],
    ]);
    expect(doc.controls.map((c) => `${c.name}: ${c.result}`)).to.deep.equal(
      // no drill here, and these repositories are written directly (backup.appendOnly is off)
      CONTROL_NAMES.map((n) => `${n}: ${n === "Restore drill passed" || n === "Append-only storage" ? "fail" : "pass"}`),
    );
    expect(doc.records).to.have.length(9);
    expect(doc.chain).to.include({ anchor: "0".repeat(64), firstId: 1, lastId: 9, count: 9, lastHash: doc.records[8].hash });
    expect(doc.records[3].hashedRecord).to.deep.equal({
      id: 4,
      at: doc.records[3].at,
      kind: "copy",
      outcome: "success",
      set_id: "s2",
      repository: "secondary",
      detail: doc.records[3].detail,
    });
    expect(doc.signature).to.include({ algorithm: "ed25519", publicKey: secrets.signingPublicKeyPem });

    const text = readFileSync(file, "utf8");
    for (const secret of [secrets.resticPassword, secrets.postgresPassword, secrets.controlToken, secrets.sessionKey.toString("hex")])
      expect(text).not.to.include(secret);
    expect(text).not.to.include("PRIVATE KEY");

    expect(verifyEvidenceFile(file, { pin })).to.include({
      ok: true,
      records: 9,
      signedBy: doc.appliance.publicKeyFingerprint,
      signature: "valid",
      signer: "verified",
    });
    const keyFile = path.join(homeLayout(env.home).secretsDir, "appliance-signing-key.pub.pem");
    const cli = await plumctl(["evidence", "verify", file, "--key", keyFile], {});
    expect(cli.code, cli.stderr).to.equal(0);
    expect(cli.stdout).to.equal(
      `${file}: verified, signed by the pinned ed25519 key ${doc.appliance.publicKeyFingerprint} (the key in ${keyFile}); 9 records, hash chain intact\n`,
    );
  });

  it("fails verification when one byte is flipped, naming why", async () => {
    const { file } = await exportTo("json", "flipped.json");
    const text = readFileSync(file, "utf8");
    // In the drill record's readable detail (4000 → 4100), after the controls that quote it too.
    flipByte(file, text.indexOf('"rtoSeconds": 4000', text.indexOf('"records": [')) + '"rtoSeconds": 4'.length);
    const res = await plumctl(["evidence", "verify", file, "--fingerprint", pin.fingerprint], {});
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include(`${file}: NOT verified: signature invalid`);
    expect(res.stderr).to.include("its signature does not match its content: the file was changed after the appliance signed it");
    expect(res.stderr).to.include("record 9 was edited: its detail differs from the hashed record");
  });

  it("fails verification when one record is removed, naming the gap", async () => {
    const { file } = await exportTo("json", "gap.json");
    const doc = JSON.parse(readFileSync(file, "utf8")) as EvidenceReport;
    doc.records.splice(4, 1);
    writeFileSync(file, JSON.stringify(doc, null, 2));
    const res = await plumctl(["evidence", "verify", file, "--fingerprint", pin.fingerprint], {});
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include("record 5 is missing: record 6 follows record 4");
    expect(res.stderr).to.include("its chain section counts 9 records but the file holds 8");
    expect(res.stderr).to.include("its signature does not match its content");
    expect(res.stderr).to.include("control backup-rpo cites record 5, which the file does not hold");
    expect(verifyEvidenceFile(file, { pin }).problems).to.have.length(4);
  });

  it("`plumctl evidence export` writes a signed PDF a person can read: title, controls table with PASS and FAIL, run tables", async () => {
    const file = path.join(dir, "period.pdf");
    const res = await plumctl(
      ["evidence", "export", "--from", from.toISOString().slice(0, 10), "--to", to.toISOString().slice(0, 10), "--format", "pdf", "--out", file],
      cliEnv,
    );
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.match(new RegExp(`^wrote ${file} and ${file}\\.sig: 9 records, controls 5 of 7 pass\\n`));
    expect(res.stdout).to.include("FAIL  Restore drill passed: Drill 9");
    expect(statSync(file).mode & 0o777).to.equal(0o644);
    expect(statSync(`${file}.sig`).mode & 0o777).to.equal(0o644);

    const { stdout: text } = await run("pdftotext", ["-layout", file, "-"]);
    expect(text).to.include("Backup evidence").and.include("Controls: 5 of 7 pass");
    for (const name of CONTROL_NAMES) expect(text, name).to.include(name);
    expect(text).to.match(/Backup within RPO\s+PASS\s+A\.8\.13\s+A1\.2/);
    expect(text).to.match(/Restore drill passed\s+FAIL\s+A\.8\.13\s+A1\.3/);
    expect(text).to.include("Backup sets").and.include("Integrity checks").and.include("Restore drills").and.include("Copies to the secondary repository");
    expect(text).to.include("4000 s");

    expect((await plumctl(["evidence", "verify", file, "--fingerprint", pin.fingerprint], {})).code).to.equal(0);
    flipByte(file, Math.floor(statSync(file).size / 2));
    const flipped = await plumctl(["evidence", "verify", file, "--fingerprint", pin.fingerprint], {});
    expect(flipped.code).to.equal(1);
    expect(flipped.stderr).to.include("the file was changed after it was signed");
  });

  it("exports CSV with the controls and every record, verified by its .sig; a flipped byte fails", async () => {
    const { file, body } = await exportTo("csv", "period.csv");
    const lines = body.toString("utf8").split("\n");
    expect(lines[0]).to.equal("section,key,value");
    expect(lines).to.include("section,control,name,result,iso27001,soc2,requirement,finding,record_ids,set_ids,values");
    expect(lines.find((l) => l.startsWith("control,restore-drill,"))).to.match(/^control,restore-drill,Restore drill passed,FAIL,A\.8\.13,A1\.3,/);
    expect(lines).to.include("section,id,at,kind,outcome,set_id,repository,detail,prev_hash,hash");
    expect(lines.filter((l) => l.startsWith("record,"))).to.have.length(9);

    expect(verifyEvidenceFile(file, { pin }).ok).to.equal(true);
    flipByte(file, body.indexOf("FAIL"));
    const res = await plumctl(["evidence", "verify", file, "--fingerprint", pin.fingerprint], {});
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include("the file was changed after it was signed");
    rmSync(`${file}.sig`);
    expect(verifyEvidenceFile(file, { pin }).problems).to.deep.equal([
      "its signature file period.csv.sig is missing: CSV and PDF exports are signed by a file beside them",
    ]);
  });

  it("masks credentials in repository locations", async () => {
    const ctx = {
      ...env.ctx,
      repos: { ...env.ctx.repos, secondary: { ...env.ctx.repos.secondary!, location: "rest:https://backup:s3cr3t-pass@site-b.example.com/plum" } },
    };
    const out = await evidenceExporter({
      ctx,
      from,
      to,
      format: "json",
      signingKeyPem: secrets.signingPrivateKeyPem,
      publicKeyPem: secrets.signingPublicKeyPem,
    });
    expect(out.body.toString()).not.to.include("s3cr3t-pass");
    expect(out.report.repositories[1]).to.include({ location: "rest:https://backup:***@site-b.example.com/plum", source: "remote" });
  });

  it("refuses to export a period whose records would carry a secret", async () => {
    await env.ctx.evidence.record({
      kind: "check",
      outcome: "failure",
      repository: "primary",
      detail: { output: [`wrong password ${secrets.resticPassword}`] },
    });
    let error: Error | undefined;
    await exportTo("json", "leak.json").catch((err: Error) => (error = err));
    expect(error?.message).to.equal("the evidence export would contain a secret (in evidence record 10); nothing was written");
  });
});

describe("backup evidence in the console", function () {
  let agent: Agent;
  let stop: () => Promise<void>;
  let auditor: WebClient;
  let pin: EvidencePin;
  let dir: string;
  const period = { from: new Date(Date.now() - 24 * H).toISOString().slice(0, 10), to: new Date().toISOString().slice(0, 10) };

  /** The admin signs in and creates an auditor, who signs in and chooses a password. */
  async function signInAuditor(): Promise<WebClient> {
    const admin = new WebClient(agent.consoleApp);
    await admin.signIn("admin", agent.firstAdmin!.oneTimePassword);
    await admin.changePassword(agent.firstAdmin!.oneTimePassword, "correct horse battery staple");
    const created = await admin.post("/users", { username: "audrey", role: "auditor" }, await admin.csrfFrom("/users"));
    const oneTime = /data-testid="one-time-password"><code>([^<]+)</.exec(created.text)![1];
    const client = new WebClient(agent.consoleApp);
    await client.signIn("audrey", oneTime);
    expect((await client.changePassword(oneTime, "violet tram window lantern")).status).to.equal(303);
    return client;
  }

  /** A download as bytes, whatever its type. */
  function download(client: WebClient, url: string) {
    const cookie = client.cookieHeader();
    return request(agent.consoleApp)
      .get(url)
      .set("Cookie", cookie)
      .buffer(true)
      .parse((res, done) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done(null, Buffer.concat(chunks)));
      });
  }

  before(async () => {
    ({ agent, stop } = await startInProcessAgent((config) => (config.security.loginRateLimitPerMinute = 1000)));
    pin = {
      fingerprint: publicKeyFingerprint(readFileSync(signingPublicKeyFile(homeLayout(agent.config.home).secretsDir), "utf8")),
      source: "the agent's key",
    };
    const evidence = new EvidenceLog(agent.sequelize);
    await evidence.record({ kind: "check", outcome: "success", repository: "primary", detail: { subset: "1/10" } });
    await evidence.record({ kind: "drill", outcome: "success", setId: "s9", detail: { rtoSeconds: 30 } });
    auditor = await signInAuditor();
    dir = mkdtempSync(path.join(tmpdir(), "plum-evidence-console-"));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await stop();
  });

  it("shows an auditor the Evidence page with the controls of a period", async () => {
    const page = await auditor.get(`/evidence?from=${period.from}&to=${period.to}`);
    expect(page.status).to.equal(200);
    expect(page.text).to.include('<a href="/evidence">Evidence</a>');
    for (const name of CONTROL_NAMES) expect(page.text).to.include(`<td>${name}</td>`);
    expect(page.text).to.match(/<td>Integrity check passed<\/td><td class="good">PASS<\/td>/);
    expect(page.text).to.match(/<td>Backup within RPO<\/td><td class="bad">FAIL<\/td>/);
    const bad = await auditor.get("/evidence?from=yesterday");
    expect(bad.status).to.equal(400);
    expect(bad.text).to.include("from: a date as YYYY-MM-DD");
  });

  it("lets an auditor download a signed export in each format, audits it, and changes no evidence", async () => {
    const before = await new EvidenceLog(agent.sequelize).list({ limit: 1000 });
    const json = await download(auditor, `/evidence/export?from=${period.from}&to=${period.to}&format=json`);
    expect(json.status).to.equal(200);
    expect(json.headers["content-type"]).to.match(/^application\/json/);
    expect(json.headers["content-disposition"]).to.equal(`attachment; filename=plum-evidence-${period.from}_${period.to}.json`);
    expect(verifyEvidenceBytes("export.json", json.body as Buffer, undefined, { pin })).to.include({ ok: true, records: 2 });

    for (const format of ["pdf", "csv"]) {
      const zip = await download(auditor, `/evidence/export?from=${period.from}&to=${period.to}&format=${format}`);
      expect(zip.status).to.equal(200);
      expect(zip.headers["content-type"]).to.equal("application/zip");
      expect(zip.headers["content-disposition"]).to.equal(`attachment; filename=plum-evidence-${period.from}_${period.to}.${format}.zip`);
      const file = path.join(dir, `export-${format}.zip`);
      writeFileSync(file, zip.body as Buffer);
      const res = await plumctl(["evidence", "verify", file, "--fingerprint", pin.fingerprint], {});
      expect(res.code, res.stderr).to.equal(0);
    }

    const exports = await agent.audit.list({ actor: "user:audrey", action: "evidence.export" });
    expect(exports.map((e) => e.detail)).to.have.deep.members(
      ["json", "pdf", "csv"].map((format) => ({
        from: `${period.from}T00:00:00.000Z`,
        to: new Date(Date.parse(`${period.to}T00:00:00Z`) + 24 * H).toISOString(),
        format,
      })),
    );
    expect(await new EvidenceLog(agent.sequelize).list({ limit: 1000 })).to.deep.equal(before);
  });

  it("serves evidence only on GET routes: exporting is read-only", () => {
    type Layer = { route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: Layer[] } };
    const routes: string[] = [];
    const walk = (stack: Layer[]) => {
      for (const layer of stack) {
        if (layer.route) routes.push(...Object.keys(layer.route.methods).map((m) => `${m.toUpperCase()} ${layer.route!.path}`));
        else if (layer.handle?.stack) walk(layer.handle.stack);
      }
    };
    walk((agent.consoleApp as unknown as { router: { stack: Layer[] } }).router.stack);
    expect(routes.filter((r) => r.includes("/evidence"))).to.deep.equal(["GET /evidence", "GET /evidence/export"]);
  });

  it("signs with the key the agent started with, even after the key files left the disk, and makes no new key", async () => {
    const secretsDir = homeLayout(agent.config.home).secretsDir;
    const keyFiles = ["appliance-signing-key.pem", "appliance-signing-key.pub.pem"].map((name) => path.join(secretsDir, name));
    const original = keyFiles.map((file) => readFileSync(file));
    keyFiles.forEach((file) => rmSync(file));
    try {
      for (const url of [`/evidence?from=${period.from}&to=${period.to}`, `/evidence/export?from=${period.from}&to=${period.to}&format=json`]) {
        const res = await download(auditor, url);
        expect(res.status, url).to.equal(200);
      }
      const json = await download(auditor, `/evidence/export?from=${period.from}&to=${period.to}&format=json`);
      const publicKeyPem = original[1].toString("utf8");
      expect(JSON.parse((json.body as Buffer).toString("utf8")).signature.publicKey).to.equal(publicKeyPem);
      const startedWith = { fingerprint: publicKeyFingerprint(publicKeyPem), source: "the key the agent started with" };
      expect(verifyEvidenceBytes("export.json", json.body as Buffer, undefined, { pin: startedWith })).to.include({ ok: true });
      expect(readdirSync(secretsDir).filter((name) => name.startsWith("appliance-signing-key"))).to.deep.equal([]);
    } finally {
      keyFiles.forEach((file, i) => writeFileSync(file, original[i], { mode: 0o600 }));
    }
  });
});
