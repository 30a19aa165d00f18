import { expect } from "chai";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { BackupContext } from "../../backup/backup-context.ts";
import type { Repository } from "../../backup/backup-types.ts";
import { evidenceReportBuilder } from "../../backup/evidence/evidence-report.ts";
import { Restic } from "../../backup/restic/restic.ts";
import { backupSetCreator } from "../../backup/sets/backup-set-creator.ts";
import { retentionApplier } from "../../backup/sets/retention.ts";
import { runChild } from "../../lib/child-process.ts";
import { isAlive } from "../../lib/processes.ts";
import { waitFor } from "../../lib/wait.ts";
import { startBackupEnv } from "../support/backup-env.ts";

// Written against the shape of the repository, not the new modules, so that the file runs on the old code too
// (and fails there on what it asserts, not on an import).
type Served = { served: string; url(): Promise<string>; pid?: number; stop?(): Promise<void> };
const endpointOf = (repo: Repository) => (repo as Repository & { appendOnly?: Served }).appendOnly;
type WithServers = BackupContext & { appendOnly?: { stop(): Promise<void> } };

/** How an attacker holding what the backups are written with reaches the repository: its endpoint, else the folder. */
async function writerAccess(repo: Repository): Promise<string> {
  const endpoint = endpointOf(repo);
  return endpoint ? endpoint.url() : repo.location;
}

/** Plain restic, as an attacker on the host would run it, with the repository and password in its environment. */
function rawRestic(repository: string, passwordFile: string, args: string[], timeoutMs = 180_000) {
  const env: NodeJS.ProcessEnv = { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD_FILE: passwordFile };
  return runChild(["restic", ...args], { env, timeoutMs, okCodes: [0, 1, 3], shown: ["restic", ...args] });
}

/**
 * Ransomware-safe backups (issue 11, item 5): with backup.appendOnly the primary repository is written through
 * the agent's `rclone serve restic --append-only` on loopback. Whoever holds what backups are written with
 * (the endpoint and its credentials) cannot forget a snapshot: restic forget fails and the snapshot stays.
 * The agent's own retention still forgets and prunes, through the separate maintenance access (the folder).
 */
describe("security: append-only repositories (rclone serve restic --append-only)", function () {
  this.timeout(300_000);
  let env: Awaited<ReturnType<typeof startBackupEnv>>;
  let ctx: WithServers;
  let passwordFile: string;
  let set: Awaited<ReturnType<typeof backupSetCreator>>;

  before(async () => {
    env = await startBackupEnv({ env: { PLUM_BACKUP_APPEND_ONLY: "true" } });
    ctx = env.ctx;
    passwordFile = ctx.repos.primary.passwordFile;
    set = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
  });
  after(async () => {
    await ctx?.appendOnly?.stop();
    await env?.stop();
  });

  it("writes a backup set through the append-only server, whose credentials come from a 0600 secret file", async () => {
    expect(set.status).to.equal("succeeded");
    const endpoint = endpointOf(ctx.repos.primary);
    expect(endpoint, "backup.appendOnly: the primary repository has an append-only endpoint").to.not.equal(undefined);
    expect(endpoint!.served).to.match(/^rclone serve restic --append-only on 127\.0\.0\.1:\d+$/);
    const url = await endpoint!.url();
    expect(url).to.match(/^rest:http:\/\/plum-backup:[A-Za-z0-9_-]{43}@127\.0\.0\.1:\d+\/$/);
    const credentials = path.join(env.home, "secrets", "restic-rest-credentials");
    expect(readFileSync(credentials, "utf8").trim()).to.equal(`plum-backup:${decodeURIComponent(/:([^:@]+)@/.exec(url)![1])}`);
    const { statSync } = await import("node:fs");
    expect(statSync(credentials).mode & 0o777).to.equal(0o600);
    // The server wants its credentials: without them nothing is listed.
    const anonymous = await rawRestic(url.replace(/\/\/[^@]+@/, "//"), passwordFile, ["snapshots", "--json"], 60_000);
    expect(anonymous.exitCode).to.equal(1);
    expect(anonymous.stderr).to.match(/401 Unauthorized/);
    const listed = JSON.parse((await rawRestic(url, passwordFile, ["snapshots", "--json", "--tag", `set:${set.id}`])).stdout) as unknown[];
    expect(listed).to.have.length(3);
  });

  it("refuses `restic forget` of an existing snapshot through that path: restic fails and the snapshot is still listed", async () => {
    const access = await writerAccess(ctx.repos.primary);
    const [victim] = JSON.parse((await rawRestic(access, passwordFile, ["snapshots", "--json", "--tag", "part:db-plum"])).stdout) as Array<{ id: string }>;
    expect(victim, "a snapshot to attack").to.not.equal(undefined);
    const attack = await rawRestic(access, passwordFile, ["forget", victim.id]);
    expect(attack.exitCode, `restic forget through the path backups are written by: ${attack.stderr.slice(-300)}`).to.equal(1);
    expect(attack.stderr).to.match(/403 Forbidden/);
    const after = JSON.parse((await rawRestic(access, passwordFile, ["snapshots", "--json"])).stdout) as Array<{ id: string }>;
    expect(after.map((s) => s.id)).to.include(victim.id);
    // prune through it removes nothing either: every pack is still referenced, and deletion is refused anyway
    const check = await rawRestic(access, passwordFile, ["check"]);
    expect(check.exitCode, check.stderr).to.equal(0);
  });

  it("the wrapper refuses forget and prune on the append-only path at once, with what to do", async () => {
    const restic = new Restic();
    const [snapshot] = await restic.snapshots(ctx.repos.primary, { tags: ["part:files"] });
    for (const attempt of [() => restic.forget(ctx.repos.primary, [snapshot.id]), () => restic.prune(ctx.repos.primary)]) {
      const err = await attempt().then(
        () => undefined,
        (e: Error & { hint?: string }) => e,
      );
      expect(err?.name).to.equal("AppendOnlyRefusedError");
      expect(err!.message).to.match(
        /^restic (forget|prune) refused on the primary repository .+: it is served append-only \(rclone serve restic --append-only on 127\.0\.0\.1:\d+\), which refuses every deletion$/,
      );
      expect(err!.hint).to.contain("maintenance access, in the retention job");
    }
    expect((await restic.snapshots(ctx.repos.primary)).map((s) => s.id)).to.include(snapshot.id);
  });

  it("the agent's retention still forgets and prunes, through the separate maintenance access", async () => {
    const second = await backupSetCreator({ ctx, kind: "manual", startedBy: "test" });
    const first = (await ctx.sets.findAll({ where: { status: "succeeded" }, order: [["startedAt", "ASC"]] }))[0];
    expect(first.id).to.not.equal(second.id);
    ctx.config.backup.retention = { keepHourly: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 };
    const outcome = await retentionApplier(ctx);
    expect(outcome.keep).to.deep.equal([second.id]);
    expect(outcome.forget).to.deep.equal([first.id]);
    expect(outcome.snapshotsForgotten).to.deep.equal({ primary: 3 });
    const left = await new Restic().snapshots(ctx.repos.primary, { tags: ["plum-set"] });
    expect(left.map((s) => s.tags.find((t) => t.startsWith("set:")))).to.have.members([`set:${second.id}`, `set:${second.id}`, `set:${second.id}`]);
    const [forgetRecord] = await ctx.evidence.list({ kind: "forget", limit: 1 });
    expect(forgetRecord.outcome).to.equal("success");
  });

  it("the evidence export's append-only storage control passes, and fails for a repository written directly", async () => {
    const publicKeyPem = readFileSync(path.join(env.home, "secrets", "appliance-signing-key.pub.pem"), "utf8");
    const report = await evidenceReportBuilder({ source: ctx, from: new Date(Date.now() - 3600_000), to: new Date(), publicKeyPem });
    const control = report.controls.find((c) => (c.id as string) === "append-only-storage");
    expect(control, "an append-only storage control").to.not.equal(undefined);
    expect(control!.result).to.equal("pass");
    expect(control!.frameworks).to.deep.equal({ iso27001: ["A.8.13"], soc2: ["A1.2"] });
    expect(control!.finding).to.match(/^primary: .+ through rclone serve restic --append-only on 127\.0\.0\.1:\d+\.$/);

    const direct = { ...ctx, repos: { primary: { ...ctx.repos.primary, appendOnly: undefined } } };
    const failing = (await evidenceReportBuilder({ source: direct, from: new Date(Date.now() - 3600_000), to: new Date(), publicKeyPem })).controls.find(
      (c) => (c.id as string) === "append-only-storage",
    )!;
    expect(failing.result).to.equal("fail");
    expect(failing.finding).to.equal(
      `Not met: the primary repository ${ctx.repos.primary.location} is written directly (whoever can write a backup can delete it): set backup.appendOnly: true.`,
    );
  });

  it("supervises rclone: restarted when it dies, stopped (by its pid) when its owner stops", async () => {
    const endpoint = endpointOf(ctx.repos.primary)!;
    const pid = endpoint.pid!;
    expect(isAlive(pid)).to.equal(true);
    process.kill(pid, "SIGKILL"); // the server this test's context started
    const restarted = await waitFor("rclone to be restarted", async () => (endpoint.pid && endpoint.pid !== pid ? endpoint.pid : undefined), {
      timeoutMs: 20_000,
    });
    expect(isAlive(restarted)).to.equal(true);
    expect(await new Restic().snapshots(ctx.repos.primary, { tags: ["plum-set"] })).to.have.length(3);
    await ctx.appendOnly!.stop();
    await waitFor("rclone to be gone", async () => (isAlive(restarted) ? undefined : true), { timeoutMs: 20_000 });
    await endpoint.url().then(
      () => expect.fail("a stopped server serves no more"),
      (err: Error) => expect(err.message).to.equal("the append-only server of the primary repository is stopping"),
    );
  });
});
