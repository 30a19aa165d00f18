import { expect } from "chai";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import request from "supertest";
import type { Agent } from "../../appliance/agent.ts";
import { unzipBundle, zipBundle } from "../../backup/evidence/evidence-bundle.ts";
import { evidencePdf } from "../../backup/evidence/evidence-pdf.ts";
import type { EvidenceReport } from "../../backup/evidence/evidence-report.ts";
import { detachedSignature, publicKeyFingerprint, signBytes, type SigningKeys } from "../../backup/evidence/evidence-signature.ts";
import { runChild } from "../../lib/child-process.ts";
import { canonicalJson } from "../../lib/hash-chain.ts";
import { homeLayout } from "../../lib/paths.ts";
import { consoleUser, signInFirstAdmin } from "../support/console-users.ts";
import type { FreshDatabases } from "../support/databases.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { plumctl } from "../support/plumctl.ts";
import type { WebClient } from "../support/web-client.ts";

/**
 * The attack of issue 11: an export whose every control is set to pass, re-signed with a fresh ed25519 key
 * embedded in the file, its fingerprint field rewritten to match. Before the fix `plumctl evidence verify`
 * trusted whatever key the file carried and printed "verified", exit 0.
 */

function forgerKeys(): SigningKeys {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    signingKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** The report with every control passing and (unless told otherwise) the forger's fingerprint in its field. */
function forgedReport(report: EvidenceReport, keys: SigningKeys, rewriteField = true): EvidenceReport {
  const { signature: _dropped, ...rest } = structuredClone(report);
  return {
    ...rest,
    appliance: { ...rest.appliance, publicKeyFingerprint: rewriteField ? publicKeyFingerprint(keys.publicKeyPem) : rest.appliance.publicKeyFingerprint },
    controls: rest.controls.map((c) => ({ ...c, result: "pass" as const })),
  };
}

function forgedJson(genuine: Buffer, keys: SigningKeys, rewriteField = true): Buffer {
  const report = forgedReport(JSON.parse(genuine.toString("utf8")) as EvidenceReport, keys, rewriteField);
  return Buffer.from(JSON.stringify({ ...report, signature: signBytes(canonicalJson(report), keys) }, null, 2) + "\n");
}

/** Every FAIL of the controls block made PASS, and the export's fingerprint row the forger's. */
function forgedCsv(genuine: Buffer, keys: SigningKeys): Buffer {
  const lines = genuine
    .toString("utf8")
    .split("\n")
    .map((l) => (l.startsWith("control,") ? l.replace(",FAIL,", ",PASS,") : l))
    .map((l) => (l.startsWith("export,public_key_fingerprint,") ? `export,public_key_fingerprint,${publicKeyFingerprint(keys.publicKeyPem)}` : l));
  return Buffer.from(lines.join("\n"));
}

/** What a multi-file `evidence verify` says of `file`: its headline and the indented lines below it. */
function verdictOf(output: string, file: string): string {
  const lines = output.split("\n");
  const at = lines.findIndex((l) => l.startsWith(`${file}: `));
  if (at < 0) return "";
  let end = at + 1;
  while (end < lines.length && lines[end].startsWith("  ")) end++;
  return lines.slice(at, end).join("\n") + "\n";
}

const recordCount = (n: number) => `; ${n} record${n === 1 ? "" : "s"}, hash chain intact`;

describe("security: a forged evidence export verifies only against the pinned appliance key", function () {
  this.timeout(300_000);
  let agent: Agent;
  let dbs: FreshDatabases;
  let stop: () => Promise<void>;
  let env: Record<string, string>;
  /** An auditor's machine: a PLUM_HOME with no appliance key in it. */
  let elsewhere: Record<string, string>;
  let dir: string;
  let keyFile: string;
  let fingerprint: string;
  let forger: SigningKeys;
  let forgerFingerprint: string;
  let auditor: WebClient;
  const genuine: Record<"json" | "csv" | "pdf", string> = { json: "", csv: "", pdf: "" };
  const day = (offsetDays: number) => new Date(Date.now() + offsetDays * 86400_000).toISOString().slice(0, 10);

  /** One `plumctl evidence verify` of every file given (the CLI takes several, each judged on its own). */
  const verify = (files: string | string[], args: string[] = [], on = elsewhere) =>
    plumctl(["evidence", "verify", ...(Array.isArray(files) ? files : [files]), ...args], on);

  function download(url: string) {
    return request(agent.consoleApp)
      .get(url)
      .set("Cookie", auditor.cookieHeader())
      .buffer(true)
      .parse((res, done) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done(null, Buffer.concat(chunks)));
      });
  }

  /** The three ways a file is checked against the appliance's key: its fingerprint, its key file, and on the appliance. */
  const pinnedWays = () =>
    [
      [["--fingerprint", fingerprint], elsewhere, "--fingerprint"],
      [["--key", keyFile], elsewhere, `the key in ${keyFile}`],
      [[], env, `this appliance's own key, ${keyFile}`],
    ] as const;

  /** Each of the four ways (no pin, then the pinned ones) as one process over all `files`, side by side. */
  const everyWay = (files: string[]) => Promise.all([verify(files), ...pinnedWays().map(([args, on]) => verify(files, [...args], on))]);

  /**
   * Forgeries must fail four ways: no pin, the fingerprint, the key file, and on the appliance itself. Each way is
   * one process over all the forged files; each file's verdict is read from its own lines. Returns the runs, the
   * pinned ones in pinnedWays() order.
   */
  async function expectRejected(forged: Array<[file: string, fieldProblem: string]>) {
    const pins = pinnedWays();
    const [unpinned, ...pinnedRuns] = await everyWay(forged.map(([file]) => file));
    expect(unpinned.code, unpinned.stdout).to.equal(1);
    expect(unpinned.stdout).to.equal("");
    for (const [file] of forged) {
      const said = verdictOf(unpinned.stderr, file);
      expect(said).to.include(`${file}: NOT verified: signature valid, signer NOT verified\n`);
      expect(said).to.include(
        `no key is pinned, so its signer is NOT verified: it names its own key, ${forgerFingerprint}, and anyone can make a key and sign with it`,
      );
      expect(said).to.include("Pin the signer: --fingerprint SHA256:… as the recovery kit or the console's Evidence page printed it");
    }
    for (const [i, [args, , source]] of pins.entries()) {
      const pinned = pinnedRuns[i];
      expect(pinned.code, `${args.join(" ")}: ${pinned.stdout}`).to.equal(1);
      expect(pinned.stdout).to.equal("");
      for (const [file, fieldProblem] of forged) {
        const said = verdictOf(pinned.stderr, file);
        expect(said, `${args.join(" ")}: ${pinned.stderr}`).to.include(`${file}: NOT verified: signature valid, but by another key than the pinned one\n`);
        expect(said).to.include(`it was signed by key ${forgerFingerprint}, not by the pinned key ${fingerprint} (${source})`);
        expect(said).to.include(`its ${fieldProblem} field names key ${forgerFingerprint}, not the pinned key ${fingerprint}`);
      }
    }
    return pinnedRuns;
  }

  /** Genuine exports verify the three pinned ways (one process each over all of them, exit 0) and not unpinned. */
  async function expectGenuine(genuineFiles: Array<[file: string, records: string]>) {
    const pins = pinnedWays();
    const [unpinned, ...runs] = await everyWay(genuineFiles.map(([file]) => file));
    for (const [i, [, , source]] of pins.entries()) {
      const res = runs[i];
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stdout).to.equal(
        genuineFiles.map(([file, records]) => `${file}: verified, signed by the pinned ed25519 key ${fingerprint} (${source})${records}\n`).join(""),
      );
    }
    expect(unpinned.code).to.equal(1);
    for (const [file] of genuineFiles) expect(verdictOf(unpinned.stderr, file)).to.include(`${file}: NOT verified: signature valid, signer NOT verified\n`);
  }

  before(async () => {
    ({ agent, dbs, stop } = await startInProcessAgent((config) => (config.security.loginRateLimitPerMinute = 1000)));
    env = { PLUM_HOME: agent.config.home, ...dbs.env };
    dir = mkdtempSync(path.join(tmpdir(), "plum-evidence-forgery-"));
    mkdirSync(path.join(dir, "auditor-home"));
    elsewhere = { PLUM_HOME: path.join(dir, "auditor-home") };
    keyFile = path.join(homeLayout(agent.config.home).secretsDir, "appliance-signing-key.pub.pem");
    fingerprint = publicKeyFingerprint(readFileSync(keyFile, "utf8"));
    forger = forgerKeys();
    forgerFingerprint = publicKeyFingerprint(forger.publicKeyPem);

    // Real evidence: a backup set made by the agent with restic, then an export in each format.
    const backup = await plumctl(["backup", "run"], env, 240_000);
    expect(backup.code, backup.stderr).to.equal(0);
    // The three exports side by side (each takes its checkpoint under the anchors' advisory lock).
    const formats = ["json", "csv", "pdf"] as const;
    for (const format of formats) genuine[format] = path.join(dir, `genuine.${format}`);
    const exported = await Promise.all(
      formats.map((format) => plumctl(["evidence", "export", "--from", day(-1), "--to", day(0), "--format", format, "--out", genuine[format]], env)),
    );
    for (const res of exported) expect(res.code, res.stderr).to.equal(0);
    auditor = await consoleUser(agent, await signInFirstAdmin(agent), "auditor1", "auditor");
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await stop();
  });

  it("prints one fingerprint everywhere an auditor can take it: plumctl, the recovery kit, the console, and openssl's own computation", async () => {
    expect(fingerprint).to.match(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const advice = `Keep this fingerprint where the appliance cannot change it (with the recovery kit, in the audit file): check any evidence export with \`plumctl evidence verify FILE --fingerprint ${fingerprint}\`.`;
    // The four plumctl runs side by side.
    const [printed, byKey, kit, off] = await Promise.all([
      plumctl(["evidence", "fingerprint"], env),
      plumctl(["evidence", "fingerprint", "--key", keyFile], elsewhere),
      plumctl(["backup", "recovery-kit"], env),
      plumctl(["evidence", "fingerprint"], elsewhere),
    ]);
    expect(printed.code, printed.stderr).to.equal(0);
    expect(printed.stdout).to.equal(`${fingerprint}\n${advice}\n`);
    expect(byKey.stdout).to.equal(`${fingerprint}\n${advice}\n`);

    expect(kit.code, kit.stderr).to.equal(0);
    expect(kit.stdout).to.include(`Evidence signing key (ed25519) fingerprint:\n  ${fingerprint}\n  ${advice}\n`);

    const page = await auditor.get(`/evidence?from=${day(-1)}&to=${day(0)}`);
    expect(page.status).to.equal(200);
    expect(page.text).to.include(`<code data-testid="fingerprint">${fingerprint}</code>`);
    expect(page.text).to.include("Keep this fingerprint where the appliance cannot change it (with the recovery kit, in the audit file)");

    // What an auditor can compute without the appliance: sha256 of the key's DER, in base64.
    const der = path.join(dir, "key.der");
    await runChild(["openssl", "pkey", "-pubin", "-in", keyFile, "-outform", "DER", "-out", der], { timeoutMs: 30_000 });
    const digest = await runChild(["openssl", "dgst", "-sha256", "-hex", der], { timeoutMs: 30_000, stdout: "collect" });
    const hex = /= ([0-9a-f]{64})\s*$/.exec(digest.stdout)![1];
    expect(`SHA256:${Buffer.from(hex, "hex").toString("base64").replace(/=+$/, "")}`).to.equal(fingerprint);

    expect(off.code).to.equal(1);
    expect(off.stderr).to.include(`there is no appliance signing key in ${path.join(elsewhere.PLUM_HOME, "secrets")}`);
  });

  it("JSON: a forgery with every control passing, re-signed by a key it embeds and names, is refused; the genuine export verifies", async () => {
    const report = JSON.parse(readFileSync(genuine.json, "utf8")) as EvidenceReport;
    expect(
      report.controls.some((c) => c.result === "fail"),
      "the genuine export has a failing control to forge",
    ).to.equal(true);
    expect(report.appliance.publicKeyFingerprint).to.equal(fingerprint);
    const forged = path.join(dir, "forged.json");
    writeFileSync(forged, forgedJson(readFileSync(genuine.json), forger));
    await Promise.all([expectRejected([[forged, "appliance.publicKeyFingerprint"]]), expectGenuine([[genuine.json, recordCount(report.records.length)]])]);
  });

  it("JSON: a forgery that left the appliance's fingerprint in its field is caught by the cross-check even without a pin", async () => {
    const forged = path.join(dir, "forged-field-kept.json");
    writeFileSync(forged, forgedJson(readFileSync(genuine.json), forger, false));
    const [res, pinned] = await Promise.all([verify(forged), verify(forged, ["--fingerprint", fingerprint])]);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include(`its appliance.publicKeyFingerprint field names key ${fingerprint}, not the key that signed it, ${forgerFingerprint}`);
    // The chain checkpoint it carries is the appliance's, signed by the appliance key: the forger cannot re-sign it.
    const { checkpoint } = (JSON.parse(readFileSync(genuine.json, "utf8")) as EvidenceReport).chain;
    expect(checkpoint, "the genuine export carries the evidence chain's checkpoint").to.not.equal(undefined);
    expect(res.stderr).to.include(`its chain checkpoint (anchor #${checkpoint!.seq}) names key ${fingerprint}, not ${forgerFingerprint}`);
    expect(res.stderr).to.include(`its chain checkpoint (anchor #${checkpoint!.seq}) is not signed by the key that signed the file`);
    expect(pinned.code).to.equal(1);
    expect(pinned.stderr).to.include(`it was signed by key ${forgerFingerprint}, not by the pinned key ${fingerprint} (--fingerprint)`);
  });

  it("CSV: a forged .csv and .sig (controls PASS, fingerprint row and .sig field rewritten) are refused; the genuine pair verifies", async () => {
    const forged = path.join(dir, "forged.csv");
    const bytes = forgedCsv(readFileSync(genuine.csv), forger);
    expect(bytes.toString()).not.to.match(/^control,[^\n]*,FAIL,/m);
    writeFileSync(forged, bytes);
    writeFileSync(`${forged}.sig`, detachedSignature("forged.csv", bytes, forger));
    const [[byFingerprint]] = await Promise.all([expectRejected([[forged, "forged.csv.sig publicKeyFingerprint"]]), expectGenuine([[genuine.csv, ""]])]);
    // The --fingerprint run (pinnedWays' first) also names the CSV's own fingerprint row.
    expect(byFingerprint.stderr).to.include(`its public_key_fingerprint field names key ${forgerFingerprint}, not the pinned key ${fingerprint}`);
  });

  it("PDF: a forged PDF with every control passing and its own .sig is refused; the genuine pair verifies", async () => {
    const report = forgedReport(JSON.parse(readFileSync(genuine.json, "utf8")) as EvidenceReport, forger);
    const bytes = await evidencePdf(report);
    const forged = path.join(dir, "forged.pdf");
    writeFileSync(forged, bytes);
    writeFileSync(`${forged}.sig`, detachedSignature("forged.pdf", bytes, forger));
    await Promise.all([expectRejected([[forged, "forged.pdf.sig publicKeyFingerprint"]]), expectGenuine([[genuine.pdf, ""]])]);
  });

  it("console downloads: a zip with a forged PDF or CSV inside, and a forged JSON download, are refused; the genuine downloads verify", async () => {
    const period = `from=${day(-1)}&to=${day(0)}`;
    const json = await download(`/evidence/export?${period}&format=json`);
    expect(json.status).to.equal(200);
    const report = JSON.parse((json.body as Buffer).toString("utf8")) as EvidenceReport;
    const zips: Record<string, string> = {};
    const forgeries: Array<[string, string]> = [];
    for (const format of ["pdf", "csv"] as const) {
      const zip = await download(`/evidence/export?${period}&format=${format}`);
      expect(zip.status).to.equal(200);
      zips[format] = path.join(dir, `console-${format}.zip`);
      writeFileSync(zips[format], zip.body as Buffer);

      const [doc] = unzipBundle(zip.body as Buffer).filter((e) => !e.name.endsWith(".sig"));
      const bytes = format === "csv" ? forgedCsv(doc.bytes, forger) : await evidencePdf(forgedReport(report, forger));
      const forgedZip = path.join(dir, `console-forged-${format}.zip`);
      writeFileSync(
        forgedZip,
        zipBundle([
          { name: doc.name, bytes },
          { name: `${doc.name}.sig`, bytes: detachedSignature(doc.name, bytes, forger) },
        ]),
      );
      forgeries.push([forgedZip, `${doc.name}.sig publicKeyFingerprint`]);
    }
    const forgedJsonFile = path.join(dir, "console-forged.json");
    writeFileSync(forgedJsonFile, forgedJson(json.body as Buffer, forger));
    forgeries.push([forgedJsonFile, "appliance.publicKeyFingerprint"]);

    const jsonFile = path.join(dir, "console.json");
    writeFileSync(jsonFile, json.body as Buffer);
    await Promise.all([
      expectRejected(forgeries),
      expectGenuine([[jsonFile, recordCount(report.records.length)], ...Object.values(zips).map((zipFile): [string, string] => [zipFile, ""])]),
    ]);
  });

  it("takes the pin as PEM, DER or the raw key; refuses a private key, a malformed fingerprint, and a key and fingerprint that disagree", async () => {
    const pem = readFileSync(keyFile, "utf8");
    const der = (await import("node:crypto")).createPublicKey(pem).export({ type: "spki", format: "der" });
    const raw = der.subarray(der.length - 32);
    const forms: Record<string, Buffer | string> = {
      "key.der": der,
      "key.raw": raw,
      "key.hex": raw.toString("hex") + "\n",
      "key.b64": raw.toString("base64") + "\n",
    };
    for (const [name, content] of Object.entries(forms)) writeFileSync(path.join(dir, name), content);
    const privateKey = path.join(dir, "private.pem");
    writeFileSync(privateKey, forger.signingKeyPem);
    const forgerKeyFile = path.join(dir, "forger.pub.pem");
    writeFileSync(forgerKeyFile, forger.publicKeyPem);
    // Each pin is its own process (a pin is per run), all side by side.
    const [refused, malformed, disagree, ...byForm] = await Promise.all([
      verify(genuine.json, ["--key", privateKey]),
      verify(genuine.json, ["--fingerprint", "SHA256:abc"]),
      verify(genuine.json, ["--key", forgerKeyFile, "--fingerprint", fingerprint]),
      ...Object.keys(forms).map((name) => verify(genuine.json, ["--key", path.join(dir, name)])),
    ]);
    for (const [i, name] of Object.keys(forms).entries()) expect(byForm[i].code, `${name}: ${byForm[i].stderr}`).to.equal(0);

    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include(`${privateKey} holds a private key`);
    expect(refused.stderr).to.include("a private key must never leave the appliance");

    expect(malformed.code).to.equal(1);
    expect(malformed.stderr).to.include('"SHA256:abc" is not an evidence key fingerprint');
    expect(malformed.stderr).to.include("SHA256: followed by 43 characters of base64");

    expect(disagree.code).to.equal(1);
    expect(disagree.stderr).to.include(`--key ${forgerKeyFile} is key ${forgerFingerprint} but --fingerprint names ${fingerprint}: they are not the same key`);
  });
});
