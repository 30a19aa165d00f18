import { expect } from "chai";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../../lib/config.ts";
import { osRelease } from "../../installer/checks/operating-system.ts";
import { sha256sums } from "../../installer/install-bundle-builder.ts";
import { INSTALL_PATHS } from "../../installer/install-layout.ts";
import { installChecks, newConfigYaml } from "../../installer/install.ts";
import { serviceUnit } from "../../installer/service-unit.ts";
import { runTasks, taskLog, TaskListError, type Task, type TaskEvent } from "../../installer/tasks.ts";
import { runTempDir } from "../support/run-dir.ts";

/** A task that makes a file (undo: removes it), or fails. */
function fileTask(dir: string, name: string, opts: { fail?: boolean; undoFails?: boolean } = {}): Task {
  return {
    title: `make ${name}`,
    async run() {
      if (opts.fail) throw new Error(`${name} cannot be made`);
      writeFileSync(path.join(dir, name), name);
      return {
        said: "made",
        undo: async () => {
          if (opts.undoFails) throw new Error(`${name} is stuck`);
          writeFileSync(
            path.join(dir, "undo-order"),
            `${existsSync(path.join(dir, "undo-order")) ? readFileSync(path.join(dir, "undo-order"), "utf8") : ""}${name}\n`,
          );
          const { rmSync } = await import("node:fs");
          rmSync(path.join(dir, name));
        },
      };
    },
  };
}

describe("install tasks: each with its undo, a failure undoes what was done, last first", () => {
  it("runs every task in order when none fails", async () => {
    const dir = runTempDir("plum-tasks-");
    const events: TaskEvent[] = [];
    await runTasks([fileTask(dir, "a"), fileTask(dir, "b")], taskLog(path.join(dir, "log")), (e) => events.push(e));
    expect(events.map((e) => `${e.kind} ${e.title}`)).to.deep.equal(["done make a", "done make b"]);
    expect(existsSync(path.join(dir, "a")) && existsSync(path.join(dir, "b"))).to.equal(true);
  });

  it("undoes the done tasks backwards when one fails, and names the log", async () => {
    const dir = runTempDir("plum-tasks-");
    const logFile = path.join(dir, "install.log");
    const events: TaskEvent[] = [];
    const err = await runTasks([fileTask(dir, "a"), fileTask(dir, "b"), fileTask(dir, "c", { fail: true })], taskLog(logFile), (e) => events.push(e)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(TaskListError);
    const e = err as TaskListError;
    expect(e.message).to.equal("make c: c cannot be made");
    expect(e.undone).to.deep.equal(["make b", "make a"]);
    expect(e.hint).to.contain(`the details are in ${logFile}`);
    expect(readFileSync(path.join(dir, "undo-order"), "utf8")).to.equal("b\na\n");
    expect(existsSync(path.join(dir, "a")) || existsSync(path.join(dir, "b"))).to.equal(false);
    expect(events.map((x) => `${x.kind} ${x.title}`)).to.deep.equal(["done make a", "done make b", "failed make c", "undone make b", "undone make a"]);
    expect(readFileSync(logFile, "utf8")).to.match(/failed: make c\nerror: (Error: )?c cannot be made/);
  });

  it("an undo that fails is named, and the others still run", async () => {
    const dir = runTempDir("plum-tasks-");
    const err = (await runTasks(
      [fileTask(dir, "a"), fileTask(dir, "b", { undoFails: true }), fileTask(dir, "c", { fail: true })],
      taskLog(path.join(dir, "log")),
    ).catch((x: unknown) => x)) as TaskListError;
    expect(err.notUndone).to.deep.equal(["make b (b is stuck)"]);
    expect(err.undone).to.deep.equal(["make a"]);
    expect(err.hint).to.contain("could not be undone and need a look: make b (b is stuck)");
  });
});

describe("install bundle and unit pieces", () => {
  it("SHA256SUMS lists members sorted, in sha256sum's own format", () => {
    expect(
      sha256sums([
        { name: "node.tar.gz", sha256: "b".repeat(64) },
        { name: "app.tgz", sha256: "a".repeat(64) },
      ]),
    ).to.equal(`${"a".repeat(64)}  app.tgz\n${"b".repeat(64)}  node.tar.gz\n`);
  });

  it("reads ID and VERSION_ID of os-release, quoted or not", () => {
    expect(osRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n')).to.deep.equal({
      id: "debian",
      versionId: "12",
      pretty: "Debian GNU/Linux 12 (bookworm)",
    });
    expect(osRelease("ID=ubuntu\nVERSION_ID=24.04\n")).to.include({ id: "ubuntu", versionId: "24.04" });
  });

  it("a new plum.yaml pins the vendor key the bundle was verified with, and the configuration loads it", () => {
    const home = runTempDir("plum-config-");
    const pem = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    mkdirSync(home, { recursive: true });
    writeFileSync(path.join(home, "plum.yaml"), newConfigYaml(pem));
    expect(loadConfig({ PLUM_HOME: home }).releases.vendorPublicKey?.trim()).to.equal(pem.trim());
  });

  it("the unit adds CAP_NET_BIND_SERVICE only for a port below 1024, and lets the agent write a repository folder outside PLUM_HOME", () => {
    const home = runTempDir("plum-config-");
    const config = loadConfig({ PLUM_HOME: home, PLUM_HTTP_PORT: "443", PLUM_BACKUP_SECONDARY: "/mnt/site-b/plum" });
    const unit = serviceUnit(INSTALL_PATHS, config);
    expect(unit).to.match(/^CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SETUID CAP_SETGID CAP_KILL CAP_NET_BIND_SERVICE$/m);
    expect(unit).to.match(/^ReadWritePaths=\/var\/lib\/plum \/var\/log\/plum \/opt\/plum -\/mnt\/site-b\/plum$/m);
    const plain = serviceUnit(INSTALL_PATHS, loadConfig({ PLUM_HOME: home }));
    expect(plain).to.match(/^CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SETUID CAP_SETGID CAP_KILL$/m);
    expect(plain).to.match(/^ReadWritePaths=\/var\/lib\/plum \/var\/log\/plum \/opt\/plum$/m);
    for (const d of ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "Restart=on-failure", "Environment=PLUM_SERVICE=1"])
      expect(plain.split("\n"), d).to.include(d);
  });

  it("install refuses another version over an installed one, before any check or change: that is an upgrade", async () => {
    const root = runTempDir("plum-installed-");
    const p = {
      ...INSTALL_PATHS,
      optDir: path.join(root, "opt"),
      etcDir: path.join(root, "etc"),
      home: path.join(root, "home"),
      logDir: path.join(root, "log"),
    };
    mkdirSync(path.join(p.optDir, "0.9.0"), { recursive: true });
    symlinkSync("0.9.0", path.join(p.optDir, "current"));
    const source = { version: "1.0.0", packages: [], builtAt: new Date(0).toISOString(), releaseBytes: 0 };
    const err = (await installChecks(p, source).catch((e: unknown) => e)) as Error & { hint?: string };
    expect(err.message).to.equal("this host runs the Plum appliance 0.9.0; installing 1.0.0 over it would skip the snapshot, the staging and the way back");
    expect(err.hint).to.contain("plumctl upgrade start 1.0.0");
  });
});
