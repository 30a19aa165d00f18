import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseDocument } from "yaml";
import { runChild } from "../lib/child-process.ts";
import { isSymlink } from "../lib/symlinks.ts";
import { ensureSystemUser } from "../lib/system-user.ts";
import { DEFAULT_CONFIG_YAML, loadConfig, type PlumConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import type { DoctorResult } from "../appliance/support/support-bundle.ts";
import { runChecks } from "./checks/run-checks.ts";
import { installFromBundle, removePackages } from "./debian-packages.ts";
import type { InstallManifest } from "./install-bundle-builder.ts";
import { configFileOf, currentLinkOf, socketWantsLink, installedEnvironment, plumctlWrapper, releaseDirOf, type InstallPaths } from "./install-layout.ts";
import { readInstallRecord, writeInstallRecord, type InstallRecord } from "./install-record.ts";
import { LIVENESS_SERVICE, LIVENESS_TIMER, livenessServiceUnit, livenessTimerUnit } from "./liveness.ts";
import { agentGuardScript } from "./agent-guard.ts";
import { serviceUnit, socketUnits } from "./service-unit.ts";
import { initName, systemctl, systemdBooted, unitActive } from "./service-manager.ts";
import { waitUntilServing } from "./serving.ts";
import type { Task, TaskLog } from "./tasks.ts";

/** What `plumctl install` installs from: the verified, unpacked install bundle (install.sh made it), or the release it runs from (a repair). */
export interface InstallSource {
  version: string;
  /** A folder holding node/ and app/, copied to /opt/plum/<version>; undefined: already there (repair). */
  releaseDir?: string;
  /** The bundle's .deb files, and what they are. */
  debDir?: string;
  packages: string[];
  /** The vendor key the bundle was verified with: pinned as releases.vendorPublicKey on a new install. */
  vendorPublicKeyPem?: string;
  builtAt: string;
  releaseBytes: number;
}

/** The folder install.sh verified and unpacked (--from): bundle/ (the members) and release/ (node and app unpacked). */
export function bundleSource(from: string): InstallSource {
  const manifestFile = path.join(from, "bundle", "install-manifest.json");
  if (!existsSync(manifestFile))
    throw new PlumError(`${from} is not an unpacked install bundle (no bundle/install-manifest.json)`, {
      hint: "install with install.sh from plum-install-X.Y.Z.tar: it checks the bundle's signature and then runs plumctl install",
    });
  const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as InstallManifest;
  return {
    version: manifest.version,
    releaseDir: path.join(from, "release"),
    debDir: path.join(from, "bundle", "debs"),
    packages: manifest.packages.map((p) => p.name),
    vendorPublicKeyPem: readFileSync(path.join(from, "bundle", "vendor-public-key.pem"), "utf8"),
    builtAt: manifest.createdAt,
    releaseBytes: folderBytes(path.join(from, "release")),
  };
}

/** What an unpacked release takes on disk (blocks, as the disk check compares it with free blocks). */
function folderBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    total += st.isDirectory() ? folderBytes(p) : st.blocks * 512;
  }
  return total;
}

/** The configuration the installed agent will read: /etc/plum/plum.yaml if it is there, else the defaults. */
export function installedConfig(p: InstallPaths): PlumConfig {
  return loadConfig({ ...process.env, ...installedEnvironment(p) });
}

export class InstallChecksFailed extends PlumError {
  readonly results: DoctorResult[];
  constructor(results: DoctorResult[]) {
    const failed = results.filter((r) => !r.ok);
    super(`${failed.length} install check${failed.length === 1 ? "" : "s"} failed: nothing was changed`, {
      hint: "fix each failure above and run the install again",
    });
    this.results = results;
  }
}

/** The install category of checks, before anything changes; throws InstallChecksFailed listing every failure. */
export async function installChecks(p: InstallPaths, source: InstallSource): Promise<DoctorResult[]> {
  // install repairs the version a host runs; moving to another goes through the upgrade (snapshot, staging, rollback).
  const current = currentLinkOf(p);
  const running = isSymlink(current) ? readlinkSync(current) : undefined;
  if (running && running !== source.version)
    throw new PlumError(
      `this host runs the Plum appliance ${running}; installing ${source.version} over it would skip the snapshot, the staging and the way back`,
      {
        hint: `upgrade instead: plumctl release import plum-${source.version}.tar, then plumctl upgrade start ${source.version} (to repair ${running}: sudo plumctl install)`,
      },
    );
  const results = await runChecks("install", {
    config: installedConfig(p),
    install: { packages: source.packages, releaseBytes: source.releaseBytes, builtAt: source.builtAt, optDir: p.optDir },
  });
  if (results.some((r) => !r.ok)) throw new InstallChecksFailed(results);
  return results;
}

/** A folder made by this run (undo: remove it), or one that was there (kept, its mode put right). */
function folder(dir: string, mode: number): { created: boolean } {
  const created = !existsSync(dir);
  mkdirSync(dir, { recursive: true, mode });
  chmodSync(dir, mode);
  return { created };
}

/** Replace `file` (or the link at it) atomically; the undo puts back what was there. */
function replaceFile(file: string, write: (tmp: string) => void): () => Promise<void> {
  const before: { link: string } | { bytes: Buffer; mode: number } | undefined =
    existsSync(file) || isSymlink(file)
      ? isSymlink(file)
        ? { link: readlinkSync(file) }
        : { bytes: readFileSync(file), mode: lstatSync(file).mode & 0o7777 }
      : undefined;
  const tmp = `${file}.plum-install-${process.pid}`;
  rmSync(tmp, { force: true });
  write(tmp);
  renameSync(tmp, file);
  return async () => {
    rmSync(file, { force: true });
    if (before && "link" in before) symlinkSync(before.link, file);
    else if (before) {
      writeFileSync(file, before.bytes, { mode: before.mode });
      chmodSync(file, before.mode); // the mode the file had, whatever the umask
    }
  };
}

/** The system users the parts run as: the embedded PostgreSQL's, the instances', the release commands'. */
export function serviceUsers(config: PlumConfig): string[] {
  return [...(config.database.url ? [] : ["postgres"]), config.instances.user, config.instances.commandUser];
}

/** plum.yaml for a new install: the commented defaults, with the vendor key the bundle was verified with pinned. */
export function newConfigYaml(vendorPublicKeyPem: string | undefined): string {
  if (!vendorPublicKeyPem) return DEFAULT_CONFIG_YAML;
  const doc = parseDocument(DEFAULT_CONFIG_YAML);
  doc.setIn(["releases", "vendorPublicKey"], vendorPublicKeyPem);
  return `# Written by plumctl install. releases.vendorPublicKey is the key the install bundle was verified with.\n${doc.toString()}`;
}

export interface InstallOutcome {
  serving?: { proxyUrl: string; consoleUrl: string };
  /** Why the service was not started here (no systemd, or --no-start). */
  notStarted?: string;
  fresh: boolean;
  record: InstallRecord;
}

/**
 * The install as a task list (each with its undo), for runTasks. Every task can run again on an installed
 * host: a second install repairs what is missing or wrong and keeps the data, secrets and configuration.
 */
export function installTasks(p: InstallPaths, source: InstallSource, opts: { start: boolean }, outcome: InstallOutcome): Task[] {
  const releaseDir = releaseDirOf(p, source.version);
  const configFile = configFileOf(p);
  const record = outcome.record;
  return [
    {
      title: "Debian packages from the bundle (restic, postgresql-client-15 and what they need)",
      async run(log: TaskLog) {
        if (!source.debDir) return { said: "none carried: a repair installs nothing" };
        const { installed, upgraded } = await installFromBundle(source.debDir, (l) => log.write(l));
        record.packagesInstalled = [...new Set([...record.packagesInstalled, ...installed])];
        if (installed.length === 0) return { said: "all present" };
        // Upgrades a dependency needed stay on a failure: going back to an older library is not an undo anyone wants.
        return { said: `installed ${installed.join(", ")}${upgraded ? " (and upgraded what they need)" : ""}`, undo: () => removePackages(installed) };
      },
    },
    {
      title: "system users",
      async run(log: TaskLog) {
        const created: string[] = [];
        for (const name of serviceUsers(installedConfig(p))) {
          if (!(await ensureSystemUser(name)).created) continue;
          log.write(`created the system user ${name}`);
          created.push(name);
        }
        record.usersCreated = [...new Set([...record.usersCreated, ...created])];
        if (created.length === 0) return { said: "all present" };
        return {
          said: `created ${created.join(", ")}`,
          undo: async () => {
            for (const name of created.reverse()) await runChild(["userdel", name], { timeoutMs: 15_000, what: `userdel ${name}` });
          },
        };
      },
    },
    {
      title: `release ${source.version} in ${releaseDir}`,
      async run() {
        const marker = path.join(releaseDir, ".installed");
        if (existsSync(marker)) return { said: "kept: already installed" };
        if (!source.releaseDir)
          throw new PlumError(`${releaseDir} is missing or incomplete, and this install has no bundle to take it from`, {
            hint: `run install.sh from plum-install-${source.version}.tar to repair it`,
          });
        const opt = folder(p.optDir, 0o755);
        const partial = `${releaseDir}.partial-${process.pid}`;
        rmSync(partial, { recursive: true, force: true });
        rmSync(releaseDir, { recursive: true, force: true });
        await runChild(["cp", "-a", source.releaseDir, partial], { timeoutMs: 10 * 60_000, what: `cp (the release into ${p.optDir})` });
        // Readable by the instances' and PostgreSQL's users: the first production release is this one.
        chmodSync(partial, 0o755);
        writeFileSync(path.join(partial, ".installed"), `${new Date().toISOString()}\n`, { mode: 0o644 });
        renameSync(partial, releaseDir);
        return { said: "installed", undo: async () => rmSync(opt.created ? p.optDir : releaseDir, { recursive: true, force: true }) };
      },
    },
    {
      title: `${currentLinkOf(p)} → ${source.version}`,
      async run() {
        const link = currentLinkOf(p);
        if (isSymlink(link) && readlinkSync(link) === source.version) return { said: "kept" };
        const undo = replaceFile(link, (tmp) => symlinkSync(source.version, tmp));
        return { said: "switched", undo };
      },
    },
    {
      title: `configuration ${configFile}`,
      async run() {
        const dir = folder(p.etcDir, 0o755);
        if (existsSync(configFile)) {
          chmodSync(configFile, 0o640);
          return { said: "kept" };
        }
        writeFileSync(configFile, newConfigYaml(source.vendorPublicKeyPem), { mode: 0o640, flag: "wx" });
        return {
          said: source.vendorPublicKeyPem ? "written, the vendor key pinned" : "written",
          undo: async () => {
            rmSync(configFile, { force: true });
            if (dir.created) rmSync(p.etcDir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      title: `data ${p.home} and logs ${p.logDir}`,
      async run() {
        // PLUM_HOME lets the PostgreSQL user through to pgdata/ (0751); the agent makes secrets/ (0700) at its first start.
        const home = folder(p.home, 0o751);
        const logs = folder(p.logDir, 0o750);
        if (!home.created && !logs.created) return { said: "kept" };
        return {
          said: "created",
          undo: async () => {
            if (home.created) rmSync(p.home, { recursive: true, force: true });
            if (logs.created) rmSync(p.logDir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      title: `plumctl on the PATH (${p.plumctl})`,
      async run() {
        mkdirSync(path.dirname(p.plumctl), { recursive: true });
        const text = plumctlWrapper(p);
        if (existsSync(p.plumctl) && readFileSync(p.plumctl, "utf8") === text) return { said: "kept" };
        const undo = replaceFile(p.plumctl, (tmp) => writeFileSync(tmp, text, { mode: 0o755 }));
        return { said: "written", undo };
      },
    },
    {
      title: `agent guard ${p.agentGuard}`,
      async run() {
        folder(p.optDir, 0o755);
        const text = agentGuardScript(p);
        if (existsSync(p.agentGuard) && readFileSync(p.agentGuard, "utf8") === text) return { said: "kept" };
        const undo = replaceFile(p.agentGuard, (tmp) => writeFileSync(tmp, text, { mode: 0o755 }));
        return { said: "written", undo };
      },
    },
    {
      title: `listening sockets ${Object.values(p.socketUnits).join(", ")}`,
      async run() {
        mkdirSync(p.systemdDir, { recursive: true });
        const undos: Array<() => Promise<void>> = [];
        const changed: string[] = [];
        for (const s of socketUnits(p, installedConfig(p))) {
          if (existsSync(s.file) && readFileSync(s.file, "utf8") === s.text) continue;
          undos.push(replaceFile(s.file, (tmp) => writeFileSync(tmp, s.text, { mode: 0o644 })));
          changed.push(s.unit);
        }
        if (changed.length === 0) return { said: "kept" };
        // A socket listens where it was first told until it is restarted, which the service holding it prevents.
        if (systemdBooted() && (await unitActive(p.unitName))) await systemctl(["stop", p.unitName], 5 * 60_000);
        if (systemdBooted()) {
          await systemctl(["daemon-reload"]);
          for (const unit of changed) if (await unitActive(unit)) await systemctl(["restart", unit]);
        }
        return {
          said: `written ${changed.join(", ")}`,
          undo: async () => {
            for (const undo of undos.reverse()) await undo();
            if (systemdBooted()) await systemctl(["daemon-reload"]);
          },
        };
      },
    },
    {
      title: `systemd unit ${p.unitFile}`,
      async run(log: TaskLog) {
        mkdirSync(path.dirname(p.unitFile), { recursive: true });
        const text = serviceUnit(p, installedConfig(p));
        const same = existsSync(p.unitFile) && readFileSync(p.unitFile, "utf8") === text;
        const undoUnit = same ? undefined : replaceFile(p.unitFile, (tmp) => writeFileSync(tmp, text, { mode: 0o644 }));
        const wasEnabled = isSymlink(p.wantsLink);
        if (systemdBooted()) {
          await systemctl(["daemon-reload"]);
          await systemctl(["enable", p.unitName, ...Object.values(p.socketUnits)]);
        } else if (!wasEnabled) {
          // What `systemctl enable` does, for a host (or an image) that boots systemd later.
          mkdirSync(path.dirname(p.wantsLink), { recursive: true });
          symlinkSync(p.unitFile, p.wantsLink);
          for (const unit of Object.values(p.socketUnits)) {
            const link = socketWantsLink(p, unit);
            mkdirSync(path.dirname(link), { recursive: true });
            if (!isSymlink(link)) symlinkSync(path.join(p.systemdDir, unit), link);
          }
          log.write(`systemd is not running here (PID 1 is ${initName()}): enabled by linking ${p.wantsLink}`);
        }
        return {
          said: `${same ? "kept" : "written"}, enabled${systemdBooted() ? "" : " for the next boot (systemd is not running here)"}`,
          undo: async () => {
            if (!wasEnabled) {
              if (systemdBooted()) await systemctl(["disable", p.unitName, ...Object.values(p.socketUnits)]);
              rmSync(p.wantsLink, { force: true });
              for (const unit of Object.values(p.socketUnits)) rmSync(socketWantsLink(p, unit), { force: true });
            }
            await undoUnit?.();
            if (systemdBooted()) await systemctl(["daemon-reload"]);
          },
        };
      },
    },
    {
      title: `liveness check ${LIVENESS_TIMER} (restarts an agent that stops answering)`,
      async run(log: TaskLog) {
        const dir = path.dirname(p.unitFile);
        const units = [
          { file: path.join(dir, LIVENESS_SERVICE), text: livenessServiceUnit(p) },
          { file: path.join(dir, LIVENESS_TIMER), text: livenessTimerUnit() },
        ];
        const undos: Array<() => Promise<void>> = [];
        for (const u of units) {
          if (!existsSync(u.file) || readFileSync(u.file, "utf8") !== u.text)
            undos.push(replaceFile(u.file, (tmp) => writeFileSync(tmp, u.text, { mode: 0o644 })));
        }
        const wants = path.join(dir, "timers.target.wants", LIVENESS_TIMER);
        const wasEnabled = isSymlink(wants);
        if (systemdBooted()) {
          await systemctl(["daemon-reload"]);
          await systemctl(["enable", "--now", LIVENESS_TIMER]);
        } else if (!wasEnabled) {
          mkdirSync(path.dirname(wants), { recursive: true });
          symlinkSync(path.join(dir, LIVENESS_TIMER), wants);
          log.write(`systemd is not running here: enabled ${LIVENESS_TIMER} by linking ${wants}`);
        }
        return {
          said: `${undos.length > 0 ? "written" : "kept"}, enabled`,
          undo: async () => {
            if (!wasEnabled) {
              if (systemdBooted()) await systemctl(["disable", "--now", LIVENESS_TIMER]);
              rmSync(wants, { force: true });
            }
            for (const undo of undos.reverse()) await undo();
            if (systemdBooted()) await systemctl(["daemon-reload"]);
          },
        };
      },
    },
    {
      title: "start the service and wait until it serves",
      async run(log: TaskLog) {
        if (!opts.start) {
          outcome.notStarted = "--no-start: start it with `systemctl start plum`";
          return { said: "skipped (--no-start)" };
        }
        if (!systemdBooted()) {
          outcome.notStarted = `systemd is not running on this host (PID 1 is ${initName()}): the service starts at the next boot with systemd`;
          return { said: "skipped: systemd is not running here" };
        }
        // restart, not start: a repair applies a new unit or release to a running service.
        let serving;
        try {
          await systemctl(["restart", p.unitName], 12 * 60_000);
          serving = await waitUntilServing(p.home, 60_000);
        } catch (err) {
          // A unit that failed to start keeps restarting (Restart=on-failure): stop it before the steps are undone.
          await systemctl(["stop", p.unitName], 5 * 60_000).catch(() => undefined);
          const journal = await runChild(["journalctl", "-u", p.unitName, "-n", "40", "--no-pager"], { timeoutMs: 15_000 }).catch(() => undefined);
          if (journal) log.write(`journalctl -u ${p.unitName}:\n${journal.stdout}`);
          throw err;
        }
        outcome.serving = { proxyUrl: serving.proxyUrl, consoleUrl: serving.consoleUrl };
        return { said: `serving on ${serving.proxyUrl}`, undo: async () => void (await systemctl(["stop", p.unitName], 5 * 60_000)) };
      },
    },
    {
      title: `install record ${path.join(p.etcDir, "install.json")}`,
      async run() {
        record.versions = [...new Set([...record.versions, source.version])];
        record.updatedAt = new Date().toISOString();
        writeInstallRecord(p, record);
        return { said: "written" };
      },
    },
  ];
}

export { readInstallRecord };
