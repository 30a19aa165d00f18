import { expect } from "chai";
import { copyFileSync, openSync, readSync, statSync, writeSync, closeSync } from "node:fs";
import path from "node:path";
import type { ChildExit } from "../../lib/child-process.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { buildInstallBundle, installBundleFileName, type BuiltInstallBundle } from "../../installer/install-bundle-builder.ts";
import { AGENT_CAPABILITIES } from "../../installer/service-unit.ts";
import { runTempDir } from "../support/run-dir.ts";
import { bootSystemdHost, defaultSystemdCacheDir, type SystemdHost } from "../support/systemd-container.ts";
import { checkoutDist, testVendorKeys } from "../support/test-bundles.ts";

const BUNDLE_DIR = "/root/plum";
const BUNDLE = `${BUNDLE_DIR}/${installBundleFileName(APP_VERSION)}`;

/** Linux capability numbers of the unit's bounding set (capability.h). */
const CAP_NUMBERS: Record<string, number> = { CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_FOWNER: 3, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7 };

/** One byte in the middle of `file` flipped, as a damaged copy would have it. */
function flipMiddleByte(from: string, to: string): void {
  copyFileSync(from, to);
  const fd = openSync(to, "r+");
  try {
    const at = Math.floor(statSync(to).size / 2);
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] ^= 0x01;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

/**
 * The offline install on a real Debian 12 with systemd as PID 1 (an nspawn machine whose network has only
 * a loopback): from plum-install-X.Y.Z.tar alone, install.sh checks the signature, `plumctl install` installs
 * the Debian packages from the bundle, lays out /opt/plum, /etc/plum, /var/lib/plum and /var/log/plum, and
 * systemd starts the hardened unit; then a backup, a repair, an uninstall that keeps the data, a reinstall
 * that finds it, a purge, and an install whose start fails and is undone.
 */
describe("install from the offline bundle on Debian 12 with systemd (no network)", function () {
  this.timeout(20 * 60_000);
  let host: SystemdHost;
  let built: BuiltInstallBundle;
  const out = runTempDir("plum-install-bundle-");

  /** A shell command inside the machine; an exit code not in okCodes fails with all it printed. */
  const sh = async (script: string, o: { okCodes?: number[]; timeoutMs?: number } = {}): Promise<ChildExit> => {
    const okCodes = o.okCodes ?? [0];
    const r = await host.exec(["sh", "-c", script], { timeoutMs: o.timeoutMs ?? 5 * 60_000, okCodes: [...Array(256).keys()] });
    if (r.exitCode === null || !okCodes.includes(r.exitCode)) throw new Error(`${script} exited with ${r.exitCode ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const exists = async (p: string) => (await sh(`test -e ${p}`, { okCodes: [0, 1] })).exitCode === 0;
  const install = (o: { okCodes?: number[] } = {}) =>
    sh(`cd ${BUNDLE_DIR} && sh install.sh --fingerprint ${built.fingerprint}`, { ...o, timeoutMs: 10 * 60_000 });
  /** GET from inside the machine's network (it has no other), with the host's node. */
  const get = async (url: string): Promise<number> => {
    const r = await host.execInNetwork([
      host.nodePath,
      "-e",
      `fetch(${JSON.stringify(url)}, { redirect: "manual" }).then((r) => console.log(r.status), (e) => { console.log(0); })`,
    ]);
    return Number(r.stdout.trim());
  };
  const secretsDigest = async () => (await sh("cd /var/lib/plum/secrets && sha256sum * | sort")).stdout;
  const setIds = async () => (await sh("plumctl backup list")).stdout.match(/\d{8}T\d{6}-[0-9a-f]{6}/g) ?? [];

  before(async function () {
    this.timeout(20 * 60_000);
    // The bundle and the machine (its rootfs is built on first use) at once; a machine that booted is stopped by after() whatever else failed.
    const [bundle, machine] = await Promise.allSettled([
      checkoutDist().then((dist) =>
        buildInstallBundle({
          version: APP_VERSION,
          outDir: out,
          signingKey: testVendorKeys().privateKey,
          debCache: path.join(defaultSystemdCacheDir(), "debs"),
          compiledDist: dist,
          compressionLevel: 1,
        }),
      ),
      bootSystemdHost({ cacheDir: defaultSystemdCacheDir() }),
    ]);
    if (machine.status === "fulfilled") host = machine.value;
    if (bundle.status === "rejected") throw bundle.reason;
    if (machine.status === "rejected") throw machine.reason;
    built = bundle.value;
    host.copyIn(built.file, BUNDLE);
    flipMiddleByte(built.file, path.join(out, "flipped.tar"));
    host.copyIn(path.join(out, "flipped.tar"), `${BUNDLE_DIR}/flipped.tar`);
    await sh(`cd ${BUNDLE_DIR} && tar -xf ${path.basename(BUNDLE)} install.sh`);
  });
  after(async () => {
    await host?.stop();
  });

  it("has no network and none of what it installs beforehand", async () => {
    const r = await host.execInNetwork([host.nodePath, "-e", "require('node:dns').lookup('deb.debian.org', (e) => console.log(e ? e.code : 'resolved'))"]);
    expect(r.stdout.trim()).to.be.oneOf(["EAI_AGAIN", "ENOTFOUND"]);
    expect((await sh("dpkg-query -W restic", { okCodes: [0, 1] })).exitCode).to.equal(1);
    expect(await exists("/opt/plum")).to.equal(false);
  });

  it("a wrong fingerprint or one flipped byte installs nothing", async () => {
    const wrong = await sh(`cd ${BUNDLE_DIR} && sh install.sh --fingerprint SHA256:not-the-vendor`, { okCodes: [1] });
    expect(wrong.stderr).to.contain(`signed with the key ${built.fingerprint}, not SHA256:not-the-vendor: nothing was installed`);
    const flipped = await sh(`cd ${BUNDLE_DIR} && sh install.sh --fingerprint ${built.fingerprint} --bundle flipped.tar`, { okCodes: [1] });
    expect(flipped.stderr).to.match(/nothing was installed/);
    for (const p of ["/opt/plum", "/etc/plum", "/var/lib/plum", "/etc/systemd/system/plum.service", "/usr/local/bin/plumctl"])
      expect(await exists(p), p).to.equal(false);
    expect((await sh("dpkg-query -W restic", { okCodes: [0, 1] })).exitCode).to.equal(1);
    expect((await sh("ls /var/tmp | grep -c plum-install", { okCodes: [0, 1] })).stdout.trim(), "install.sh leaves no temporary folder").to.equal("0");
  });

  it("installs from the bundle alone: packages, layout, a hardened unit that systemd starts; console and proxy answer", async () => {
    const r = await install();
    expect(r.stdout).to.contain(`signed by ${built.fingerprint} and intact`);
    expect(r.stdout).to.match(/installed .*restic/);
    expect(r.stdout).to.contain(`Plum appliance ${APP_VERSION} is installed.`);
    expect(r.stdout).to.match(/one-time password: \S{5}-\S{5}-\S{5}-\S{5}/);
    expect((await sh("systemctl is-active plum")).stdout.trim()).to.equal("active");
    expect((await sh("systemctl is-enabled plum")).stdout.trim()).to.equal("enabled");
    expect(await get("http://127.0.0.1:8080/readyz")).to.equal(200);
    expect(await get("http://127.0.0.1:8800/login")).to.equal(200);
    // The layout and its modes.
    expect(
      (await sh("stat -c '%a %U' /var/lib/plum/secrets /var/lib/plum/secrets/restic-password /etc/plum/plum.yaml")).stdout.trim().split("\n"),
    ).to.deep.equal(["700 root", "600 root", "640 root"]);
    expect((await sh("readlink /opt/plum/current")).stdout.trim()).to.equal(APP_VERSION);
    expect((await sh("grep -c '^ *-----BEGIN PUBLIC KEY-----' /etc/plum/plum.yaml")).stdout.trim(), "the vendor key is pinned").to.equal("1");
    // What the kernel says of the running agent: the unit's hardening applies.
    const mainPid = (await sh("systemctl show -p MainPID --value plum")).stdout.trim();
    const status = (await sh(`cat /proc/${mainPid}/status`)).stdout;
    expect(/^NoNewPrivs:\s+(\d)/m.exec(status)?.[1]).to.equal("1");
    const wanted = AGENT_CAPABILITIES.reduce((m, c) => m | (1n << BigInt(CAP_NUMBERS[c])), 0n);
    expect(BigInt(`0x${/^CapBnd:\s+(\S+)/m.exec(status)?.[1]}`)).to.equal(wanted);
    // Its view of the file system (its mount namespace): read-only but for the unit's ReadWritePaths=.
    const inAgent = (script: string) => sh(`nsenter --target=${mainPid} --mount -- sh -c '${script}'`, { okCodes: [0, 1] });
    expect((await inAgent("touch /usr/probe /etc/probe 2>&1")).stdout).to.match(
      /\/usr\/probe': Read-only file system[\s\S]*\/etc\/probe': Read-only file system/,
    );
    expect((await inAgent("touch /var/lib/plum/probe /var/log/plum/probe && echo written")).stdout.trim()).to.equal("written");
    // The instance and PostgreSQL run as their own users.
    expect((await sh("ps -o user= -C postgres | sort -u")).stdout.trim()).to.equal("postgres");
    const verify = await sh("systemd-analyze verify /etc/systemd/system/plum.service 2>&1", { okCodes: [0] });
    expect(verify.stdout).not.to.match(/ignoring|Unknown/i);
  });

  it("runs a backup", async () => {
    const r = await sh("plumctl backup run 2>&1");
    expect(r.stdout).to.match(/set \S+ succeeded/);
    expect(await setIds()).to.have.length(1);
  });

  it("the liveness check restarts an agent that stops answering", async () => {
    expect((await sh("systemctl is-active plum-liveness.timer")).stdout.trim()).to.equal("active");
    // The timer's check, made quick for the test (a drop-in, as an admin would tune it): 1 s to answer, 2 misses.
    const node = "/opt/plum/current/node/bin/node /opt/plum/current/app/bin/plumctl.js";
    await sh(
      `mkdir -p /etc/systemd/system/plum-liveness.service.d && printf '[Service]\\nExecStart=\\nExecStart=${node} liveness-check --misses 2 --timeout 1 --restart\\n' > /etc/systemd/system/plum-liveness.service.d/test.conf && systemctl daemon-reload`,
    );
    const hung = (await sh("systemctl show -p MainPID --value plum")).stdout.trim();
    await sh(`kill -STOP ${hung}`);
    try {
      await sh("systemctl start plum-liveness.service");
      expect((await sh("systemctl show -p MainPID --value plum")).stdout.trim(), "one miss is not enough").to.equal(hung);
      await sh("systemctl start plum-liveness.service");
      expect((await sh("journalctl -u plum-liveness --no-pager")).stdout).to.contain("did not answer 2 times in a row: restarting plum.service");
      await sh(
        'for i in $(seq 1 120); do p=$(systemctl show -p MainPID --value plum); [ "$p" != 0 ] && [ "$p" != ' +
          hung +
          " ] && systemctl is-active --quiet plum && exit 0; sleep 0.5; done; exit 1",
      );
      expect(await get("http://127.0.0.1:8080/readyz")).to.equal(200);
    } finally {
      await sh(`kill -CONT ${hung} 2>/dev/null; rm -r /etc/systemd/system/plum-liveness.service.d && systemctl daemon-reload`);
    }
  });

  it("a second install repairs what is missing and keeps the data and secrets", async () => {
    const secrets = await secretsDigest();
    const sets = await setIds();
    await sh("rm /usr/local/bin/plumctl /etc/systemd/system/multi-user.target.wants/plum.service");
    const r = await install();
    expect(r.stdout).to.contain(`Plum appliance ${APP_VERSION} is repaired.`);
    expect(r.stdout).to.match(/release .* — kept: already installed/);
    expect(r.stdout).to.match(/plumctl on the PATH .* — written/);
    expect((await sh("systemctl is-enabled plum")).stdout.trim()).to.equal("enabled");
    expect((await sh("systemctl is-active plum")).stdout.trim()).to.equal("active");
    expect(await secretsDigest()).to.equal(secrets);
    expect(await setIds()).to.deep.equal(sets);
    // The installed plumctl repairs from its own release, without the bundle: a configuration others could read is put right.
    await sh("chmod 0644 /etc/plum/plum.yaml");
    const own = await sh("plumctl install");
    expect(own.stdout).to.contain(`Plum appliance ${APP_VERSION} is repaired.`);
    expect(own.stdout).to.match(/Debian packages .* — none carried: a repair installs nothing/);
    expect((await sh("stat -c %a /etc/plum/plum.yaml")).stdout.trim()).to.equal("640");
    expect((await sh("systemctl is-active plum")).stdout.trim()).to.equal("active");
    expect(await setIds()).to.deep.equal(sets);
  });

  it("uninstall removes the service and /opt/plum, keeps data, secrets and configuration; a reinstall finds them", async () => {
    const secrets = await secretsDigest();
    const sets = await setIds();
    const r = await sh("plumctl uninstall");
    expect(r.stdout).to.contain("Recovery kit");
    expect(r.stdout).to.contain("Kept (remove them with uninstall --purge)");
    expect((await sh("systemctl is-active plum", { okCodes: [3, 4] })).stdout.trim()).to.be.oneOf(["inactive", "unknown"]);
    for (const p of ["/opt/plum", "/etc/systemd/system/plum.service", "/usr/local/bin/plumctl"]) expect(await exists(p), p).to.equal(false);
    for (const p of ["/var/lib/plum/secrets", "/etc/plum/plum.yaml", "/var/log/plum"]) expect(await exists(p), p).to.equal(true);
    expect((await sh("pgrep -c -u postgres", { okCodes: [0, 1] })).stdout.trim(), "PostgreSQL stopped with the service").to.equal("0");

    await install();
    expect(await secretsDigest()).to.equal(secrets);
    expect(await setIds()).to.deep.equal(sets);
  });

  it("uninstall --purge asks first, then removes the data, the configuration and the users it created", async () => {
    const refused = await sh("plumctl uninstall --purge </dev/null", { okCodes: [1] });
    expect(refused.stderr).to.contain("--yes-destroy-data");
    expect(await exists("/var/lib/plum/secrets")).to.equal(true);
    const r = await sh("plumctl uninstall --purge --yes-destroy-data");
    expect(r.stdout).to.contain("Recovery kit");
    expect(r.stdout).to.contain("/var/lib/plum");
    for (const p of ["/opt/plum", "/var/lib/plum", "/etc/plum", "/var/log/plum"]) expect(await exists(p), p).to.equal(false);
    expect((await sh("id plum-app", { okCodes: [0, 1] })).exitCode).to.equal(1);
  });

  it("an install whose service cannot start is undone, step by step, and names its log", async () => {
    // Something else holds the embedded PostgreSQL's port: the checks pass, the agent's start fails.
    await sh(`systemd-run --unit=port-squatter ${host.nodePath} -e "require('node:net').createServer().listen(5433, '127.0.0.1')"`);
    try {
      const r = await install({ okCodes: [1] });
      expect(r.stderr).to.match(/start the service and wait until it serves: /);
      expect(r.stdout).to.contain("↺ undone: /opt/plum/current");
      const log = /the details are in (\/var\/log\/plum\/plum-install-\S+\.log)/.exec(r.stderr)?.[1];
      expect(log, r.stderr).to.be.a("string");
      expect(await exists(log!)).to.equal(true);
      for (const p of ["/opt/plum", "/etc/systemd/system/plum.service", "/usr/local/bin/plumctl", "/etc/plum/plum.yaml"])
        expect(await exists(p), p).to.equal(false);
      expect((await sh("systemctl is-active plum", { okCodes: [3, 4] })).stdout.trim()).to.be.oneOf(["inactive", "failed", "unknown"]);
      expect((await sh("id plum-app", { okCodes: [0, 1] })).exitCode, "the users this run created are gone").to.equal(1);
    } finally {
      await sh("systemctl stop port-squatter", { okCodes: [0, 5] });
    }
  });
});
