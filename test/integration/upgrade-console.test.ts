import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import semver from "semver";
import request from "supertest";
import type { Agent } from "../../appliance/agent.ts";
import { manifestBytes, type BundleManifest } from "../../appliance/releases/bundle-manifest.ts";
import { ReleaseStore } from "../../appliance/releases/release-store.ts";
import { homeLayout } from "../../lib/paths.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { waitFor } from "../../lib/wait.ts";
import { consoleUser, signInFirstAdmin } from "../support/console-users.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import { buildUpgrade, rolledBackReport } from "../support/upgrade-rows.ts";
import type { WebClient } from "../support/web-client.ts";

const ACTIONS = ["/releases", "/upgrade", "/upgrade/approve", "/upgrade/abort", "/upgrade/rollback", "/upgrade/confirm-restore"];

describe("ops console: releases, upgrade and history pages", function () {
  let agent: Agent;
  let stop: () => Promise<void>;
  let admin: WebClient;
  let operator: WebClient;
  let auditor: WebClient;
  let scratch: string;

  before(async () => {
    const vendor = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    ({ agent, stop } = await startInProcessAgent((config) => {
      config.security.loginRateLimitPerMinute = 1000;
      // A key is configured, so an upload gets as far as the format check.
      config.releases.vendorPublicKey = vendor;
    }));
    admin = await signInFirstAdmin(agent);
    operator = await consoleUser(agent, admin, "opal", "operator");
    auditor = await consoleUser(agent, admin, "audrey", "auditor");
    scratch = mkdtempSync(path.join(tmpdir(), "plum-console-test-"));
  });
  after(async () => {
    rmSync(scratch, { recursive: true, force: true });
    await stop();
  });

  const journal = () => agent.upgrades.journal;
  /** An upgrade validated on staging, waiting for an admin's approval to promote. */
  const waitingForApproval = () => {
    const { verify, snapshot, stage, validate } = rolledBackReport().steps;
    return buildUpgrade(journal(), { promotion: "approval", step: "promote", status: "waiting", report: { steps: { verify, snapshot, stage, validate } } });
  };

  // One unfinished upgrade at a time: a test that fails half-way must not block the next one's rows.
  afterEach(async () => {
    const active = await journal().active();
    if (active) await journal().update(active.id, { status: "failed", error: "closed by the test" });
  });

  /** Upload a file as the bundle, with the client's session and CSRF token. */
  async function upload(client: WebClient, file: string) {
    const csrf = await client.csrfFrom("/");
    return request(agent.consoleApp)
      .post("/releases")
      .set("Cookie", client.cookieHeader())
      .set("Accept", "text/html")
      .field("_csrf", csrf)
      .attach("bundle", file)
      .redirects(0);
  }

  it("lets an auditor read the three pages and refuses every action with 403", async () => {
    for (const page of ["/releases", "/upgrade", "/upgrades/history"]) {
      const res = await auditor.get(page);
      expect(res.status, page).to.equal(200);
      expect(res.text, page).not.to.include('method="post" action="/releases"').and.not.to.include('action="/upgrade"');
    }
    for (const action of ACTIONS) {
      const res = await auditor.post(action, { version: "9.9.9", promotion: "approval" }, await auditor.csrfFrom("/"));
      expect(res.status, action).to.equal(403);
      expect(res.text).to.include("Your role (auditor) may not");
    }
    expect(await journal().history()).to.deep.equal([]);
  });

  it("keeps approving a promotion and confirming a restore to admins", async () => {
    for (const action of ["/upgrade/approve", "/upgrade/confirm-restore"]) {
      const res = await operator.post(action, {}, await operator.csrfFrom("/"));
      expect(res.status, action).to.equal(403);
      expect(res.text).to.include("Your role (operator) may not approve upgrades.");
    }
    // The error handler audits a denial without holding up the answer: wait (with a deadline) for both rows.
    const targets = await waitFor(
      "both denials in the audit log",
      async () => {
        const rows = (await agent.audit.list({ actor: "user:opal", action: "access.denied", limit: 10 })).map((r) => r.target);
        return rows.length >= 2 ? rows : undefined;
      },
      { timeoutMs: 5_000 },
    );
    expect(targets).to.include.members(["POST /upgrade/approve", "POST /upgrade/confirm-restore"]);
  });

  it("shows every release, the one serving production, and links the pages in the nav", async () => {
    const res = await operator.get("/releases");
    expect(res.status).to.equal(200);
    expect(res.text).to.include(`data-testid="production-version">${APP_VERSION}<`);
    expect(res.text).to.match(new RegExp(`data-release="${APP_VERSION.replace(/\./g, "\\.")}">[\\s\\S]*?installed[\\s\\S]*?serves production`));
    expect(res.text).to.include('enctype="multipart/form-data"');
    expect(res.text).to.include('href="/releases">Releases<').and.include('href="/upgrade">Upgrade<').and.include('href="/upgrades/history">History<');
  });

  it("shows what each release changes, from its signed manifest, as escaped text, saying which changelog section it is", async () => {
    const releasesDir = homeLayout(agent.config.home).releasesDir;
    const store = new ReleaseStore({ releasesDir, keep: 3 });
    const next = semver.inc(APP_VERSION, "minor")!;
    const older = semver.inc(next, "patch")!; // a bundle built before bundles carried a changelog
    const text = [
      "### Added",
      "",
      "- Gift cards: a voucher with a balance,",
      "  spent over several visits.",
      "- <script>alert(1)</script> in a merchant name is shown as text.",
    ].join("\n");
    const place = (version: string, changes?: BundleManifest["changes"]) => {
      const dir = path.join(releasesDir, version);
      mkdirSync(dir, { recursive: true });
      const manifest: BundleManifest = {
        ...store.manifest(APP_VERSION),
        version,
        artefacts: [{ name: "app.tgz", sha256: "0".repeat(64), bytes: 1 }],
        changes,
      };
      writeFileSync(path.join(dir, "manifest.json"), manifestBytes(manifest));
      writeFileSync(path.join(dir, "manifest.sig"), "not checked by a listing\n");
    };
    place(next, { section: "Unreleased", text });
    place(older);
    try {
      const res = await auditor.get("/releases");
      expect(res.status).to.equal(200);
      const article = (version: string) =>
        new RegExp(`<article data-changes="${version.replace(/\./g, "\\.")}">([\\s\\S]*?)</article>`).exec(res.text)?.[1] ?? "";
      const staged = article(next);
      expect(staged).to.include(
        `<strong>Unreleased section.</strong> from CHANGELOG.md&#x27;s Unreleased section: the changelog had no section for ${next} yet.`,
      );
      expect(staged).to.include("<h4>Added</h4>");
      expect(staged).to.include("<li>Gift cards: a voucher with a balance, spent over several visits.</li>");
      expect(staged).to.include("<li>&lt;script&gt;alert(1)&lt;/script&gt; in a merchant name is shown as text.</li>");
      expect(res.text).not.to.include("<script>alert(1)");
      expect(article(older)).to.include("No changelog came with this release");
      const installed = store.manifest(APP_VERSION).changes!;
      expect(article(APP_VERSION)).to.include('<span class="good">serves production</span>').and.include(`from CHANGELOG.md, section ${installed.section}`);
    } finally {
      for (const version of [next, older]) rmSync(path.join(releasesDir, version), { recursive: true, force: true });
    }
  });

  it("refuses a bundle that is not one, names the failed check and the hint, audits it and keeps no upload", async () => {
    writeFileSync(path.join(scratch, "bogus.txt"), "not a release\n");
    const file = path.join(scratch, "plum-9.9.9.tar");
    execFileSync("tar", ["-cf", file, "-C", scratch, "bogus.txt"]);

    const res = await upload(operator, file);
    expect(res.status, res.text).to.equal(422);
    expect(res.text).to.include('data-testid="failed-check">format<');
    expect(res.text).to.include("plum-9.9.9.tar must hold exactly manifest.json, manifest.sig, app.tgz; it holds bogus.txt");
    expect(res.text).to.include("What to do: ask the vendor for the bundle again");
    const [row] = await agent.audit.list({ action: "release.import", limit: 1 });
    expect(row).to.include({ actor: "user:opal", outcome: "failure", target: "file:plum-9.9.9.tar" });
    expect(row.detail).to.include({ check: "format" });
    // The folder goes when the server side of the response closes, which may be just after the answer arrived.
    const staging = path.join(homeLayout(agent.config.home).releasesDir, ".upload");
    await waitFor("the upload folder to go", async () => (existsSync(staging) ? undefined : true), { timeoutMs: 2_000 });
  });

  it("asks for a file when the import form comes without one", async () => {
    const res = await operator.post("/releases", {}, await operator.csrfFrom("/releases"));
    expect(res.status).to.equal(400);
    expect(res.text).to.include("Choose a bundle (plum-X.Y.Z.tar) to import.");
  });

  it("shows the manager's refusals on the Upgrade page with their hint, and starts nothing", async () => {
    const start = await operator.post("/upgrade", { version: "9.9.9", promotion: "approval" }, await operator.csrfFrom("/upgrade"));
    expect(start.status).to.equal(409);
    expect(start.text).to.include("release 9.9.9 is not on this appliance").and.include("What to do: import its bundle first");

    const rollback = await operator.post("/upgrade/rollback", {}, await operator.csrfFrom("/upgrade"));
    expect(rollback.status).to.equal(409);
    expect(rollback.text).to.include(`there is no earlier release to roll back to from ${APP_VERSION}`);

    const confirm = await admin.post("/upgrade/confirm-restore", {}, await admin.csrfFrom("/upgrade"));
    expect(confirm.status).to.equal(409);
    expect(confirm.text).to.include("no rollback is waiting for a restore confirmation");

    const bad = await operator.post("/upgrade", { version: "latest", promotion: "approval" }, await operator.csrfFrom("/upgrade"));
    expect(bad.status).to.equal(400);
    expect(bad.text).to.include("version must be a version X.Y.Z");
    expect(await journal().history()).to.deep.equal([]);
  });

  it("renders an upgrade's steps, suites, rollback mode, soak and journal on Upgrade, History and its own page", async () => {
    const u = await buildUpgrade(journal(), {
      status: "rolled-back",
      step: "rollback",
      rollbackMode: "down-migrations",
      approvedBy: "user:admin",
      approvedAt: new Date(),
      report: rolledBackReport(),
      error: "soak breach: 5xx ratio 7.5% above 2%",
    });
    await journal().note(u.id, "soak", "failed", { breach: "5xx ratio 7.5% above 2%" });

    const page = await auditor.get("/upgrade");
    expect(page.status).to.equal(200);
    expect(page.text).to.include(`Upgrade <a href="/upgrades/${u.id}">${u.id}</a>: 1.0.0 → 1.1.0`);
    expect(page.text).to.include('data-testid="upgrade-status" data-upgrade-status>rolled back<');
    expect(page.text).to.match(/<tr data-step="stage"><td>stage<\/td><td class="state-done" data-field="state">done<\/td><td data-field="seconds">41\.3 s</);
    expect(page.text).to.match(/<tr data-step="complete"><td>complete<\/td><td class="state-skipped" data-field="state">skipped</);
    expect(page.text).to.include('data-testid="rollback-mode">down-migrations<').and.include("1.0.0&#x27;s smoke suite failed on the new schema");
    expect(page.text).to.include("37.0 s watched · 412 requests · 31 5xx · p99 180 ms").and.include("Breach: 5xx ratio 7.5% above 2%");
    expect(page.text).to.include("voucher list loads").and.include("column vouchers.gift_card_id does not exist");
    expect(page.text).not.to.include("balances match the ledger"); // passing checks only on the full report
    expect(page.text).to.include("2.3 s after the breach");
    expect(page.text).to.include("&quot;breach&quot;:&quot;5xx ratio 7.5% above 2%&quot;");
    expect(page.text).not.to.include("data-upgrade-live"); // a finished upgrade is not followed

    const history = await auditor.get("/upgrades/history");
    expect(history.text).to.match(
      new RegExp(
        `<tr data-upgrade="${u.id}">[\\s\\S]*?1\\.0\\.0 → 1\\.1\\.0[\\s\\S]*?rolled-back[\\s\\S]*?user:opal[\\s\\S]*?user:admin[\\s\\S]*?down-migrations[\\s\\S]*?soak breach`,
      ),
    );

    const detail = await auditor.get(`/upgrades/${u.id}`);
    expect(detail.status).to.equal(200);
    expect(detail.text).to.include("balances match the ledger").and.include("voucher list loads");
    expect(detail.text).to.include("1733000000000_gift-cards");
    expect(detail.text).to.include('data-testid="report-json"');
    expect((await auditor.get("/upgrades/9999")).status).to.equal(404);
    expect((await auditor.get("/upgrades/abc")).status).to.equal(404);

    const live = await auditor.get("/upgrade.json", "application/json");
    expect(live.body.upgrade).to.include({ id: u.id, status: "rolled-back", finished: true });
    expect(live.body.upgrade.steps.find((s: { name: string }) => s.name === "validate")).to.deep.equal({
      name: "validate",
      state: "done",
      text: "done",
      seconds: "63.9 s",
    });
  });

  it("shows the data-diff gate: declared changes with what was measured before approval, undeclared ones on a refusal", async () => {
    const { verify, snapshot, stage, validate } = rolledBackReport().steps;
    const measured = { before: { from: "restore" as const, tables: 16, rows: 250_000, seconds: 0.4 }, after: { tables: 17, rows: 250_000, seconds: 0.3 } };
    const waiting = await buildUpgrade(journal(), {
      promotion: "approval",
      step: "promote",
      status: "waiting",
      report: {
        steps: { verify, snapshot, stage, validate },
        dataGate: {
          ...measured,
          declaredBy: "manifest",
          migrations: ["1733000000000_gift-cards"],
          verdict: "passed",
          undeclared: [],
          unread: ["1733000000000_gift-cards: select refresh_balances()"],
          declared: [
            { migration: "1733000000000_gift-cards", change: "table-added", table: "gift_cards", source: "derived", measured: "added, 0 rows" },
            {
              migration: "1733000000000_gift-cards",
              change: "column-rewritten",
              table: "vouchers",
              column: "code",
              source: "stated",
              note: "codes are stored in upper case",
              measured: "values changed",
            },
          ],
        },
      },
    });
    const page = await admin.get("/upgrade");
    expect(page.text).to.include('data-testid="data-gate-verdict" data-verdict="passed">passed: every difference the migrations made on staging is declared<');
    expect(page.text).to.include("Staging before the migrations: 16 tables, 250,000 rows, fingerprinted in 0.4 s (by the restore");
    expect(page.text).to.match(
      /<td>column-rewritten vouchers\.code<br><span class="muted">codes are stored in upper case<\/span><\/td><td>values changed<\/td><td>stated<\/td>/,
    );
    expect(page.text).to.include("<code>1733000000000_gift-cards: select refresh_balances()</code>");
    expect(page.text).to.include('action="/upgrade/approve"');
    await journal().update(waiting.id, { status: "aborted" });

    const refused = await buildUpgrade(journal(), {
      status: "aborted",
      step: "validate",
      error: "1.1.0's migrations changed data they do not declare: payouts.amount_minor: 12 rows changed (e.g. id=1, id=4)",
      report: {
        steps: { verify, snapshot, stage, validate: { ...validate, outcome: "failed" } },
        dataGate: {
          ...measured,
          rowsSeconds: 2.5,
          declaredBy: "manifest",
          verdict: "refused",
          declared: [],
          undeclared: [{ table: "payouts", column: "amount_minor", kind: "values-changed", what: "values changed", rows: 12, examples: ["id=1", "id=4"] }],
        },
      },
    });
    const detail = await auditor.get(`/upgrades/${refused.id}`);
    expect(detail.text).to.include('data-verdict="refused">refused: the migrations changed data they do not declare<');
    expect(detail.text).to.include('<li class="bad">payouts.amount_minor: 12 rows changed (e.g. id&#x3D;1, id&#x3D;4)</li>');
    expect(detail.text).to.include("rows compared one by one in 2.5 s");
  });

  it("lets an admin approve a waiting promotion and an operator abort it", async () => {
    const u = await waitingForApproval();
    const asOperator = await operator.get("/upgrade");
    expect(asOperator.text).to.include(`data-upgrade-live="/upgrade.json" data-upgrade-id="${u.id}"`);
    expect(asOperator.text).to.include("waiting for an admin&#x27;s approval");
    expect(asOperator.text).to.include('action="/upgrade/abort"').and.not.include('action="/upgrade/approve"');
    expect(asOperator.text).not.to.include("Start an upgrade"); // one upgrade at a time

    const asAdmin = await admin.get("/upgrade");
    expect(asAdmin.text).to.include('action="/upgrade/approve"');
    const approved = await admin.post("/upgrade/approve", {}, await admin.csrfFrom("/upgrade"));
    expect(approved.status).to.equal(303);
    expect(approved.headers.location).to.equal("/upgrade?notice=approved");
    expect((await journal().get(u.id))!.approvedBy).to.equal("user:admin");
    expect((await admin.get("/upgrade")).text).not.to.include('action="/upgrade/approve"');

    const aborted = await operator.post("/upgrade/abort", {}, await operator.csrfFrom("/upgrade"));
    expect(aborted.status).to.equal(303);
    expect(aborted.headers.location).to.equal("/upgrade?notice=aborted");
    const after = (await journal().get(u.id))!;
    expect(after).to.include({ status: "aborted", error: "aborted by user:opal" });
    const actions = (await agent.audit.list({ limit: 20 })).filter((r) => r.target === `upgrade:${u.id}`).map((r) => `${r.actor} ${r.action}`);
    expect(actions).to.include.members(["user:admin upgrade.approve", "user:opal upgrade.abort", "agent upgrade.aborted"]);
    const page = await operator.get("/upgrade?notice=aborted");
    expect(page.text).to.include("The upgrade was aborted: staging is torn down, production was not touched.");
    expect(page.text).to.include("Start an upgrade");
  });

  it("links an aborted upgrade's support bundle; only an admin downloads it (audited), and only from the support folder", async () => {
    const u = await waitingForApproval();
    // Aborted from the page: the agent's own upgrade host writes the bundle, after the end, in the background.
    expect((await operator.post("/upgrade/abort", {}, await operator.csrfFrom("/upgrade"))).headers.location).to.equal("/upgrade?notice=aborted");
    const written = await waitFor(
      "the support bundle in the report",
      async () => {
        const b = (await journal().get(u.id))!.report.supportBundle;
        return b && "file" in b ? b : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const supportDir = path.join(agent.config.home, "support");
    expect(path.dirname(written.file)).to.equal(supportDir);
    const name = path.basename(written.file);
    expect(name).to.match(new RegExp(`^plum-support-.+-upgrade-${u.id}-aborted-\\d{8}T\\d{6}Z\\.tar\\.gz$`));

    const link = `Support bundle: <a href="/support-bundles/${name}" download data-testid="support-bundle-link">${name}</a>`;
    expect((await admin.get("/upgrade")).text).to.include(link);
    expect((await admin.get(`/upgrades/${u.id}`)).text).to.include(link);
    for (const [who, role] of [
      [auditor, "auditor"],
      [operator, "operator"],
    ] as const) {
      const page = await who.get(`/upgrades/${u.id}`);
      expect(page.text, role).to.include(`Support bundle: <code>${name}</code>`).and.not.include("/support-bundles/");
      const denied = await who.get(`/support-bundles/${name}`);
      expect(denied.status, role).to.equal(403);
      expect(denied.text).to.include(`Your role (${role}) may not export support bundles. Ask an admin if you need this.`);
    }

    const download = (client: WebClient, urlPath: string) =>
      request(agent.consoleApp)
        .get(urlPath)
        .set("Cookie", client.cookieHeader())
        .buffer(true)
        .parse((res, done) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => done(null, Buffer.concat(chunks)));
        });
    const got = await download(admin, `/support-bundles/${name}`);
    expect(got.status).to.equal(200);
    expect(got.headers["content-type"]).to.equal("application/gzip");
    expect(got.headers["content-disposition"]).to.equal(`attachment; filename=${name}`);
    const bytes = readFileSync(written.file);
    expect(Buffer.compare(got.body as Buffer, bytes)).to.equal(0);
    expect(bytes.subarray(0, 2).toString("hex")).to.equal("1f8b");
    // The agent was started with the doctor checks (as `plumctl agent` does): its bundle holds their results.
    const saved = path.join(scratch, name);
    writeFileSync(saved, got.body as Buffer);
    const members = execFileSync("tar", ["-t", "-z", "-f", saved], { encoding: "utf8" }).split("\n");
    expect(members).to.include.members(["doctor.json", "doctor.txt", "upgrades/upgrades.json", "redactions.json"]);

    // Only a regular file directly in PLUM_HOME/support: not beside it, not through a link planted in it.
    writeFileSync(path.join(agent.config.home, "planted.tar.gz"), "outside the support folder\n");
    symlinkSync(path.join(agent.config.home, "planted.tar.gz"), path.join(supportDir, "linked.tar.gz"));
    symlinkSync(path.join(agent.config.home, "plum.yaml"), path.join(supportDir, "config.tar.gz"));
    mkdirSync(path.join(supportDir, "folder.tar.gz"));
    for (const crafted of [
      "..%2Fplanted.tar.gz",
      "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
      "..%2Fsecrets%2Fcontrol-token",
      "%2E%2E",
      ".hidden.tar.gz",
      "linked.tar.gz",
      "config.tar.gz",
      "folder.tar.gz",
      "absent.tar.gz",
      encodeURIComponent(written.file),
    ]) {
      const res = await download(admin, `/support-bundles/${crafted}`);
      expect(res.status, crafted).to.equal(404);
      expect(res.body.toString(), crafted).not.to.include("outside the support folder");
    }
    // Not routed at all: the path leaves /support-bundles/ before the route sees a name.
    expect((await download(admin, "/support-bundles/../planted.tar.gz")).status).to.equal(404);

    const audited = await agent.audit.list({ action: "support-bundle.download", limit: 50 });
    expect(audited.map((r) => `${r.actor} ${r.outcome} ${r.target}`)).to.include.members([
      `user:admin success file:${name}`,
      `user:audrey denied file:${name}`,
      `user:opal denied file:${name}`,
      "user:admin failure file:../planted.tar.gz",
      "user:admin failure file:linked.tar.gz",
    ]);
    expect(audited.find((r) => r.outcome === "success")!.detail).to.deep.equal({ bytes: bytes.length });
  });

  it("offers the restore confirmation with its write window to admins only, and rollback while soaking", async () => {
    const report = { ...rolledBackReport(), rollbackMode: { mode: "restore-required" as const, why: "down migrations failed on staging" } };
    report.rollback = { ...report.rollback!, writeWindow: { from: "2025-01-15T02:01:00.000Z", to: "2025-01-15T02:07:30.000Z" } };
    const pending = await buildUpgrade(journal(), { status: "restore-pending", step: "rollback", rollbackMode: "restore-required", report });
    const asAdmin = await admin.get("/upgrade");
    expect(asAdmin.text).to.include('action="/upgrade/confirm-restore"');
    expect(asAdmin.text).to.include("loses what was written from 2025-01-15 02:01:00 UTC to 2025-01-15 02:07:30 UTC");
    const asOperator = await operator.get("/upgrade");
    expect(asOperator.text).not.to.include('action="/upgrade/confirm-restore"');
    expect(asOperator.text).to.include("An admin must confirm the restore of the pre-upgrade snapshot.");
    await journal().update(pending.id, { status: "failed", error: "closed by the test" });

    await buildUpgrade(journal(), {
      status: "soaking",
      step: "soak",
      promotion: "now",
      report: { steps: { ...rolledBackReport().steps, soak: { startedAt: new Date().toISOString() } } },
    });
    const page = await operator.get("/upgrade");
    expect(page.text).to.include('action="/upgrade/rollback"').and.include("Roll back to 1.0.0");
    expect(page.text).not.to.include('action="/upgrade/abort"');
    expect(page.text).to.match(/<tr data-step="soak"><td>soak<\/td><td class="state-running" data-field="state">running</);
  });
});
