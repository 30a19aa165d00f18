import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { expect } from "chai";
import { agentLink, callAgent } from "../../appliance/control/control-client.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { isAlive } from "../../lib/processes.ts";
import { waitFor } from "../../lib/wait.ts";
import { compiledPlumctl } from "../support/compiled-plumctl.ts";
import { freePort } from "../support/ports.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";

/**
 * An agent restart with a handover, as plum.service does it but without systemd: systemd-socket-activate holds
 * the proxy's and the console's listening sockets (as plum-proxy.socket and plum-console.socket do) while one
 * agent stops for a handover and the next starts on the same sockets, under load through the edge proxy.
 */
describe("agent restart with a handover: the instance and PostgreSQL keep serving, the next agent adopts them", function () {
  this.timeout(240_000);
  let home: string;
  let holder: ChildProcess | undefined;
  let out = "";
  let proxyPort: number;
  const agentPids = () => [...out.matchAll(/agent pid=(\d+)/g)].map((m) => Number(m[1]));
  const postmasterPid = () => {
    const file = path.join(home, "pgdata", "postmaster.pid");
    return existsSync(file) ? Number(readFileSync(file, "utf8").split("\n")[0]) : undefined;
  };
  const instancePids = () => {
    const dir = path.join(home, "run", "instances");
    return existsSync(dir) ? readdirSync(dir).map((f) => JSON.parse(readFileSync(path.join(dir, f), "utf8")).pid as number) : [];
  };
  const banners = () => out.split("is running").length - 1;

  before(async () => {
    home = tempHome();
    proxyPort = await freePort();
    const consolePort = await freePort();
    const env: Record<string, string> = {
      PLUM_HOME: home,
      PLUM_HTTP_HOST: "127.0.0.1",
      PLUM_HTTP_PORT: String(proxyPort),
      PLUM_CONSOLE_HOST: "127.0.0.1",
      PLUM_CONSOLE_PORT: String(consolePort),
      PLUM_CONSOLE_COOKIE_SECURE: "false",
      PLUM_BACKUP_SCHEDULER: "false",
      PLUM_PG_PORT: String(await freePort()),
      PLUM_LOG_LEVEL: "info",
      NODE: process.execPath,
      PLUMCTL: await compiledPlumctl(),
    };
    // Two generations of the agent on the same two sockets, each told they are its own (LISTEN_PID).
    const one = `sh -c 'echo "agent" "pid=$$"; LISTEN_PID=$$ exec "$NODE" "$PLUMCTL" agent'`;
    holder = spawn(
      "systemd-socket-activate",
      [
        "-l",
        `127.0.0.1:${proxyPort}`,
        "-l",
        `127.0.0.1:${consolePort}`,
        "--fdname=proxy:console",
        ...Object.keys(env).map((k) => `-E${k}`),
        ...["PATH", "HOME"].map((k) => `-E${k}`),
        "sh",
        "-c",
        `${one}; echo "agent" "exited=$?"; ${one}; echo "agent" "exited=$?"`,
      ],
      { cwd: APP_ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    holder.stdout!.on("data", (d) => (out += d));
    holder.stderr!.on("data", (d) => (out += d));
    await waitFor("systemd-socket-activate to listen", async () => out.includes("Listening on") || undefined, { timeoutMs: 10_000 });
  });

  after(async () => {
    // The last agent stops everything it runs (no handover asked for); then nothing of ours may be left.
    for (const pid of agentPids().filter(isAlive)) process.kill(pid, "SIGTERM");
    await waitFor("the agents to exit", async () => agentPids().every((p) => !isAlive(p)) || undefined, { timeoutMs: 60_000 }).catch(() => undefined);
    for (const pid of [...instancePids(), postmasterPid() ?? 0].filter((p) => p > 0 && isAlive(p))) process.kill(pid, "SIGKILL");
    try {
      process.kill(-holder!.pid!, "SIGKILL");
    } catch {
      // gone
    }
    removeHome(home);
  });

  it("serves through the restart with no failed request, on the same instance and PostgreSQL, and a stop still stops everything", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const failures: string[] = [];
    const seen = { before: 0, after: 0 };
    let phase: "before" | "after" = "before";
    let stop = false;
    const get = () =>
      new Promise<void>((resolve) => {
        const req = http.get({ host: "127.0.0.1", port: proxyPort, path: "/readyz", agent, timeout: 120_000 }, (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode !== 200) failures.push(`${phase}: status ${res.statusCode}`);
            else seen[phase]++;
            resolve();
          });
        });
        req.on("error", (err) => {
          failures.push(`${phase}: ${err.message}`);
          resolve();
        });
      });
    // The first connection starts the first agent (socket activation); it is queued until the agent answers.
    const firstRequest = get();
    await waitFor("the first agent to serve", async () => banners() >= 1 || undefined, { timeoutMs: 120_000 }).catch((err) => {
      throw new Error(`${err.message}\n${out.slice(-3000)}`);
    });
    await firstRequest;
    const first = { pg: postmasterPid(), instances: instancePids() };
    expect(first.instances).to.have.length(1);
    const loops = Array.from({ length: 4 }, async () => {
      while (!stop) await get();
    });
    await waitFor("load through the first agent", async () => seen.before > 50 || undefined, { timeoutMs: 30_000 });

    const link = agentLink(home)!;
    const restart = await callAgent<{ how: string }>(link, "POST", "/agent/restart", { stopOnly: true });
    expect(restart.how).to.equal("stop");
    await waitFor("the first agent to exit", async () => /agent exited=/.test(out) || undefined, { timeoutMs: 60_000 });
    expect(out, out.slice(-4000)).to.include("agent exited=0");
    phase = "after";
    await waitFor("the second agent to serve", async () => banners() >= 2 || undefined, { timeoutMs: 120_000 }).catch((err) => {
      throw new Error(`${err.message}\n${out.slice(-3000)}`);
    });
    await waitFor("load through the second agent", async () => seen.after > 50 || undefined, { timeoutMs: 30_000 });
    stop = true;
    await Promise.all(loops);
    agent.destroy();

    expect(failures, out.slice(-2000)).to.deep.equal([]);
    expect(postmasterPid(), "the same PostgreSQL").to.equal(first.pg);
    expect(instancePids(), "the same product instance").to.deep.equal(first.instances);
    expect(existsSync(path.join(home, "run", "handover.json")), "the handover record is done with").to.equal(false);
    const agentLog = readFileSync(path.join(home, "logs", "agent.log"), "utf8");
    expect(agentLog).to.include('"msg":"instance adopted"');
    expect(agentLog).to.include('"msg":"embedded PostgreSQL adopted from the previous agent"');

    // A plain stop of the new agent is no handover: it stops the instance and PostgreSQL as before.
    const [, second] = agentPids();
    process.kill(second, "SIGTERM");
    await waitFor("the second agent to exit", async () => (out.match(/agent exited=/g) ?? []).length >= 2 || undefined, { timeoutMs: 90_000 });
    expect(out).to.match(/agent exited=0\s*$/);
    expect(first.instances.concat(first.pg ?? 0).filter(isAlive), "nothing left running").to.deep.equal([]);
  });
});
