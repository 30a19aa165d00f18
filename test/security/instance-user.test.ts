import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { userInfo } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { runChild } from "../../lib/child-process.ts";
import { homeLayout } from "../../lib/paths.ts";
import { waitFor } from "../../lib/wait.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";

/** The Uid: or Gid: line of /proc/<pid>/status: real, effective, saved, file system. */
function ids(pid: number, line: "Uid" | "Gid"): number[] {
  const m = new RegExp(`^${line}:\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`/proc/${pid}/status has no ${line}: line`);
  return m.slice(1).map(Number);
}

async function idOf(user: string, flag: "-u" | "-g"): Promise<number> {
  return Number((await runChild(["id", flag, user], { timeoutMs: 5000 })).stdout.trim());
}

describe("attack: code running in the product instance, with the agent as root", function () {
  this.timeout(180_000);
  let running: Awaited<ReturnType<typeof startInProcessAgent>>;
  let pid: number;

  before(async function () {
    if (userInfo().uid !== 0) this.skip(); // the agent switches user only as root
    running = await startInProcessAgent();
    const serving = running.agent.production.current()!;
    pid = running.agent.runtime.list().find((i) => i.id === serving.id)!.pid!;
  });
  after(() => running?.stop());

  it("runs the production instance as the dedicated system user, not root", async () => {
    const user = "plum-app"; // instances.user's default
    const [uid, gid] = [await idOf(user, "-u"), await idOf(user, "-g")];
    expect(uid).to.be.greaterThan(0);
    expect(ids(pid, "Uid"), "/proc/<pid>/status Uid").to.deep.equal([uid, uid, uid, uid]);
    expect(ids(pid, "Gid"), "/proc/<pid>/status Gid").to.deep.equal([gid, gid, gid, gid]);
    // No supplementary group of root's survives the switch.
    expect(running.agent.config.instances.user).to.equal(user);
    expect(/^Groups:[ \t]*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1].trim()).to.equal("");
  });

  it("as that user, cannot open any secret: everything under secrets/, the restic password, the signing key, the session key, plum.yaml", async () => {
    const layout = homeLayout(running.agent.config.home);
    const secrets = readdirSync(layout.secretsDir).map((f) => path.join(layout.secretsDir, f));
    const files = [...secrets, layout.configFile];
    // The same user and group the instance got, through the one runner (uid/gid), as a small node child.
    const [uid, gid] = [ids(pid, "Uid")[0], ids(pid, "Gid")[0]];
    const probe = `const fs = require("node:fs"); const out = {};
      for (const f of JSON.parse(process.argv[1])) { try { fs.closeSync(fs.openSync(f, "r")); out[f] = "opened"; } catch (e) { out[f] = e.code; } }
      try { fs.readdirSync(${JSON.stringify(layout.secretsDir)}); out.list = "listed"; } catch (e) { out.list = e.code; }
      process.stdout.write(JSON.stringify(out));`;
    const res = await runChild([process.execPath, "-e", probe, JSON.stringify(files)], { uid, gid, cwd: "/", timeoutMs: 20_000 });
    const seen = JSON.parse(res.stdout) as Record<string, string>;
    expect(seen).to.deep.equal({ ...Object.fromEntries(files.map((f) => [f, "EACCES"])), list: "EACCES" });
    for (const name of ["restic-password", "appliance-signing-key.pem", "session-key", "postgres-password", "control-token"])
      expect(secrets, `secrets/${name}`).to.include(path.join(layout.secretsDir, name));
    expect(
      secrets.some((f) => /postgres-role-.*-password$/.test(f)),
      "the product roles' passwords were probed",
    ).to.equal(true);
  });

  it("runs the release's migrations as another system user, so the instance cannot read their environment (the migrations role's password)", async () => {
    // A database that accepts and never answers keeps the release's `plumctl migrate` waiting, so it can be looked at.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const marker = randomBytes(12).toString("hex");
    const url = `postgres://plum_migrate:${marker}@127.0.0.1:${(silent.address() as net.AddressInfo).port}/plum`;
    const release = await running.agent.production.release();
    const exec = running.agent.runtime.exec(release, ["migrate"], { env: { PLUM_MIGRATE_DATABASE_URL: url }, timeoutMs: 60_000 }).catch((e: unknown) => e);
    try {
      const migrate = await waitFor(
        "the release's migrate process",
        async () =>
          readdirSync("/proc")
            .filter((d) => /^\d+$/.test(d))
            .map(Number)
            .find((p) => {
              try {
                return readFileSync(`/proc/${p}/environ`, "utf8").includes(marker);
              } catch {
                return false;
              }
            }),
        { timeoutMs: 30_000 },
      );
      const commandUid = await idOf(running.agent.config.instances.commandUser, "-u");
      expect(commandUid).to.be.greaterThan(0);
      expect(ids(migrate, "Uid"), "the migrate process's Uid").to.deep.equal([commandUid, commandUid, commandUid, commandUid]);
      expect(commandUid).to.not.equal(ids(pid, "Uid")[0]);
      const [uid, gid] = [ids(pid, "Uid")[0], ids(pid, "Gid")[0]];
      const probe = `try { require("node:fs").readFileSync("/proc/${migrate}/environ"); process.stdout.write("read"); } catch (e) { process.stdout.write(e.code); }`;
      const res = await runChild([process.execPath, "-e", probe], { uid, gid, cwd: "/", timeoutMs: 20_000 });
      expect(res.stdout, "the instance's user reading the migrate process's environment").to.equal("EACCES");
      process.kill(migrate, "SIGKILL");
      await exec;
    } finally {
      silent.close();
    }
  });
});
