import { expect } from "chai";
import { existsSync } from "node:fs";
import { isAlive } from "../../lib/processes.ts";
import { waitFor } from "../../lib/wait.ts";
import { bootSystemdHost, defaultSystemdCacheDir, type SystemdHost } from "../support/systemd-container.ts";

const PORT = 18080;
const UNIT = "plum-probe.service";

/**
 * What the service reports about itself: who it runs as, what the kernel says of its privileges, and which
 * writes the sandbox lets through. A file the test puts in the machine's /tmp must not be in the service's.
 */
const SERVER = `
const http = require("node:http");
const fs = require("node:fs");
const tryWrite = (p) => { try { fs.writeFileSync(p, "x"); return "ok"; } catch (e) { return e.code; } };
const tryList = (p) => { try { return fs.readdirSync(p); } catch (e) { return e.code; } };
http.createServer((req, res) => {
  const status = fs.readFileSync("/proc/self/status", "utf8");
  const field = (k) => new RegExp("^" + k + ":\\\\s*(\\\\S+)", "m").exec(status)[1];
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({
    uid: process.getuid(), noNewPrivs: field("NoNewPrivs"), capBnd: field("CapBnd"), capEff: field("CapEff"),
    writes: { varLib: tryWrite("/var/lib/plum-probe/w"), varLog: tryWrite("/var/log/plum-probe/w"), etc: tryWrite("/etc/w"), usr: tryWrite("/usr/w"), tmp: tryWrite("/tmp/w") },
    tmp: tryList("/tmp"), root: tryList("/root"),
  }));
}).listen(Number(process.env.PORT), "127.0.0.1");
`;

/** The hardening our units carry; each directive is checked below by what the running process sees. */
function unitFile(nodePath: string): string {
  return `[Unit]
Description=plum hardening probe

[Service]
User=plum-probe
Group=plum-probe
Environment=PORT=${PORT}
ExecStart=${nodePath} /opt/plum-probe/server.js
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=/var/lib/plum-probe /var/log/plum-probe
ProtectHome=yes
PrivateTmp=yes
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SETUID CAP_SETGID CAP_KILL
Restart=on-failure
RestartSec=200ms

[Install]
WantedBy=multi-user.target
`;
}

/** CAP_CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, KILL 5, SETGID 6, SETUID 7. */
const BOUNDING_SET = (1n << 0n) | (1n << 1n) | (1n << 3n) | (1n << 5n) | (1n << 6n) | (1n << 7n);

interface Probe {
  uid: number;
  noNewPrivs: string;
  capBnd: string;
  capEff: string;
  writes: Record<string, string>;
  tmp: string[] | string;
  root: string[] | string;
}

describe("a hardened unit under systemd as PID 1 (systemd-nspawn machine)", function () {
  this.timeout(20 * 60_000); // the first run on a machine builds the rootfs (≈ 40 s on 2 cores; mirror-bound)
  let host: SystemdHost;

  /** GET / from the machine's own network namespace (the service listens on the machine's loopback). */
  async function probe(): Promise<Probe> {
    const script = `fetch("http://127.0.0.1:${PORT}/", { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).then((t) => process.stdout.write(t))`;
    const r = await host.execInNetwork([process.execPath, "-e", script], { timeoutMs: 10_000 });
    return JSON.parse(r.stdout) as Probe;
  }
  const show = async (...props: string[]) => {
    const r = await host.exec(["systemctl", "show", UNIT, ...props.map((p) => `--property=${p}`)]);
    return Object.fromEntries(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    ) as Record<string, string>;
  };

  before(async () => {
    host = await bootSystemdHost({ cacheDir: defaultSystemdCacheDir() });
  });
  after(() => host?.stop());

  it("boots to running in seconds (no unit of the image waits out a timeout)", () => {
    expect(host.state, host.consoleTail()).to.equal("running");
    expect(host.bootMs).to.be.below(30_000);
  });

  it("enables and starts the unit; the process runs with the hardening the unit asks for", async () => {
    host.writeFile("/opt/plum-probe/server.js", SERVER);
    host.writeFile(`/etc/systemd/system/${UNIT}`, unitFile(host.nodePath));
    host.writeFile("/tmp/outside-the-service", "");
    await host.exec(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "plum-probe"]);
    await host.exec(["install", "-d", "-o", "plum-probe", "-g", "plum-probe", "/var/lib/plum-probe", "/var/log/plum-probe"]);
    await host.exec(["systemd-analyze", "verify", `/etc/systemd/system/${UNIT}`]);
    await host.exec(["systemctl", "enable", "--now", UNIT]);

    const seen = await waitFor("the unit to serve", () => probe(), { timeoutMs: 15_000 });
    expect(seen.uid).to.not.equal(0);
    expect(seen.noNewPrivs).to.equal("1");
    expect(BigInt(`0x${seen.capBnd}`)).to.equal(BOUNDING_SET);
    expect(seen.capEff).to.match(/^0+$/);
    expect(seen.writes).to.deep.equal({ varLib: "ok", varLog: "ok", etc: "EROFS", usr: "EROFS", tmp: "ok" });
    expect(seen.tmp, "PrivateTmp: the service has a /tmp of its own").to.deep.equal(["w"]);
    expect(seen.root, "ProtectHome: /root is inaccessible").to.equal("EACCES");
    expect((await show("UnitFileState")).UnitFileState).to.equal("enabled");
  });

  it("restarts the service when it is killed (Restart=on-failure)", async () => {
    const before = await show("MainPID", "NRestarts");
    await host.exec(["systemctl", "kill", "--signal=SIGKILL", UNIT]);
    const after = await waitFor(
      "a new main process",
      async () => {
        const s = await show("MainPID", "NRestarts", "ActiveState");
        return s.ActiveState === "active" && s.MainPID !== "0" && s.MainPID !== before.MainPID ? s : undefined;
      },
      { timeoutMs: 15_000 },
    );
    expect(Number(after.NRestarts)).to.equal(Number(before.NRestarts) + 1);
    await waitFor("the restarted unit to serve", () => probe(), { timeoutMs: 15_000 });
  });

  it("stops the service (systemctl stop), which then neither serves nor restarts", async () => {
    await host.exec(["systemctl", "stop", UNIT]);
    const s = await show("ActiveState", "Result");
    expect(s).to.deep.equal({ ActiveState: "inactive", Result: "success" });
    const err = await probe().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, "nothing listens any more").to.be.instanceOf(Error);
  });

  it("halts the machine and leaves no process or cgroup of it behind", async () => {
    const { leaderPid, cgroupDirs } = host;
    await host.stop();
    expect(isAlive(leaderPid)).to.equal(false);
    expect(cgroupDirs.filter((d) => existsSync(d))).to.deep.equal([]);
  });
});
