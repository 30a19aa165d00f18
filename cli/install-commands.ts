import type { Command } from "commander";
import { mkdirSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline/promises";
import { describeError, PlumError } from "../lib/errors.ts";
import { APP_ROOT, CODE_ROOT, resolveHome } from "../lib/paths.ts";
import { APP_VERSION } from "../lib/version.ts";
import type { DoctorResult } from "../appliance/support/support-bundle.ts";
import type { InstallOutcome, InstallSource } from "../installer/install.ts";
import { INSTALL_PATHS, releaseDirOf } from "../installer/install-layout.ts";
import type { TaskEvent } from "../installer/tasks.ts";
import type { UninstallOutcome } from "../installer/uninstall.ts";

// The service's ExecStartPost runs `wait-ready` at every start: this module loads only what that needs;
// install and uninstall load the checks, the task lists and the ops database when they run.
const HOST_ADMIN = { id: 0, username: "cli", role: "admin" as const };

function requireRoot(what: string): void {
  if (userInfo().uid !== 0) throw new PlumError(`${what} changes the host: run it as root`, { hint: `sudo plumctl ${what}` });
}

function printChecks(results: DoctorResult[]): void {
  for (const r of results) {
    const said = r.ok ? r.found : r.error;
    process.stdout.write(`${r.ok ? "ok  " : "FAIL"}  ${r.title}${said ? ` — ${said}` : ""}\n`);
    if (!r.ok && r.hint) process.stdout.write(`      hint: ${r.hint}\n`);
  }
}

function printEvent(e: TaskEvent): void {
  if (e.kind === "done") process.stdout.write(`  ✔ ${e.title}${e.said ? ` — ${e.said}` : ""}\n`);
  else if (e.kind === "failed") process.stdout.write(`  ✖ ${e.title}\n`);
  else if (e.kind === "undone") process.stdout.write(`  ↺ undone: ${e.title}\n`);
  else process.stdout.write(`  ! could not undo: ${e.title}: ${e.error instanceof Error ? e.error.message : String(e.error)}\n`);
}

/** The log of one run, in /var/log/plum by default (made 0750 now if it is not there: the failure that needs it may come first). */
async function runLog(kind: string, dir: string = INSTALL_PATHS.logDir) {
  const { taskLog } = await import("../installer/tasks.ts");
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  return taskLog(path.join(dir, `plum-${kind}-${new Date().toISOString().replace(/[:.]/g, "-")}.log`));
}

/** A repair from the release this plumctl runs from (/opt/plum/<version>/app). */
function installedSource(): InstallSource {
  const releaseDir = releaseDirOf(INSTALL_PATHS, APP_VERSION);
  if (path.resolve(APP_ROOT) !== path.join(releaseDir, "app"))
    throw new PlumError(`this plumctl runs from ${APP_ROOT}, not from an installed release in ${INSTALL_PATHS.optDir}`, {
      hint: "install from the offline bundle: tar -xf plum-install-X.Y.Z.tar install.sh && sudo sh install.sh --fingerprint SHA256:…",
    });
  return { version: APP_VERSION, packages: [], builtAt: new Date(0).toISOString(), releaseBytes: 0 };
}

/** The admin's one-time password while it has not been changed (a new one: the first one went nowhere). */
async function firstSignIn(): Promise<{ username: string; oneTimePassword: string } | undefined> {
  const [{ installedConfig }, { withOpsDatabase }, { passwordResetter }] = await Promise.all([
    import("../installer/install.ts"),
    import("../appliance/ops-database.ts"),
    import("../appliance/console/commands/user-commands.ts"),
  ]);
  const config = installedConfig(INSTALL_PATHS);
  return withOpsDatabase(config, async (db) => {
    const admin = await db.models.User.findOne({ where: { username: "admin" } });
    if (!admin || !admin.mustChangePassword) return undefined;
    const ctx = { sequelize: db.sequelize, models: db.models, audit: db.audit, security: config.security, sessionHours: config.console.sessionHours };
    const { oneTimePassword } = await passwordResetter({ ctx, actor: HOST_ADMIN, input: { userId: admin.id } });
    return { username: admin.username, oneTimePassword };
  });
}

async function confirmPurge(yes: boolean): Promise<void> {
  const { purgeTargets } = await import("../installer/uninstall.ts");
  const host = hostname();
  if (yes) return;
  if (!process.stdin.isTTY)
    throw new PlumError("--purge destroys the data, the secrets and the local backups, and there is no one here to confirm it", {
      hint: "run it in a terminal (it asks for the hostname), or add --yes-destroy-data",
    });
  process.stdout.write(
    `This destroys, with no way back:\n${purgeTargets(INSTALL_PATHS)
      .map((t) => `  ${t}\n`)
      .join("")}`,
  );
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const typed = (await rl.question(`Type this host's name (${host}) to go on: `)).trim();
    if (typed !== host) throw new PlumError(`"${typed}" is not ${host}: nothing was removed`, { hint: "run it again and type the hostname exactly" });
  } finally {
    rl.close();
  }
}

export function register(program: Command): void {
  program
    .command("install")
    .description("install (or repair) the appliance as the systemd service plum: checks first, then each step with its undo")
    .option("--from <dir>", "the install bundle install.sh verified and unpacked (install.sh passes it)")
    .option("--no-start", "write and enable everything, do not start the service")
    .action(async (opts: { from?: string; start: boolean }) => {
      requireRoot("install");
      const [{ bundleSource, InstallChecksFailed, installChecks, installTasks, readInstallRecord }, { runTasks }] = await Promise.all([
        import("../installer/install.ts"),
        import("../installer/tasks.ts"),
      ]);
      const source = opts.from ? bundleSource(path.resolve(opts.from)) : installedSource();
      process.stdout.write(`Installing the Plum appliance ${source.version}\n\nChecks:\n`);
      try {
        printChecks(await installChecks(INSTALL_PATHS, source));
      } catch (err) {
        if (err instanceof InstallChecksFailed) printChecks(err.results);
        throw err;
      }
      const log = await runLog("install");
      const before = readInstallRecord(INSTALL_PATHS);
      const outcome: InstallOutcome = { fresh: before.versions.length === 0, record: before };
      process.stdout.write(`\nSteps (details in ${log.file}):\n`);
      await runTasks(installTasks(INSTALL_PATHS, source, { start: opts.start }, outcome), log, printEvent);
      const lines = ["", `  Plum appliance ${source.version} is ${outcome.fresh ? "installed" : "repaired"}.`];
      if (outcome.serving) {
        lines.push(`    product (edge proxy):  ${outcome.serving.proxyUrl}`, `    ops console:           ${outcome.serving.consoleUrl}`);
        const first = await firstSignIn();
        if (first)
          lines.push(
            "",
            "  Sign in to the ops console as",
            `    username: ${first.username}`,
            `    one-time password: ${first.oneTimePassword}`,
            "  It is shown only now and must be changed at first sign-in.",
          );
      } else if (outcome.notStarted) {
        lines.push(`  Not started: ${outcome.notStarted}.`);
      }
      lines.push(
        "",
        "  Recovery kit (what restores the data without this host): print it with `sudo plumctl backup recovery-kit`",
        "  once the first backup has run, and keep it offline, apart from the host.",
        `  Status: plumctl status · logs: journalctl -u plum, ${INSTALL_PATHS.logDir} · configuration: ${path.join(INSTALL_PATHS.etcDir, "plum.yaml")}`,
        "",
      );
      process.stdout.write(lines.join("\n"));
    });

  program
    .command("uninstall")
    .description("stop and remove the service and /opt/plum; keeps the data, secrets, backups and configuration unless --purge")
    .option("--purge", "also remove /var/lib/plum (data, secrets, local backups), /var/log/plum, /etc/plum and the users install created")
    .option("--yes-destroy-data", "confirm --purge without a terminal (it asks for the hostname otherwise)")
    .action(async (opts: { purge?: boolean; yesDestroyData?: boolean }) => {
      requireRoot("uninstall");
      if (opts.yesDestroyData && !opts.purge) throw new PlumError("--yes-destroy-data confirms --purge: give both, or neither");
      if (opts.purge) await confirmPurge(opts.yesDestroyData ?? false);
      await printRecoveryKit(opts.purge ?? false);
      // A purge removes /var/log/plum: its own log goes where it stays.
      const log = await runLog("uninstall", opts.purge ? "/var/tmp" : INSTALL_PATHS.logDir);
      const [{ uninstallTasks }, { runTasks }] = await Promise.all([import("../installer/uninstall.ts"), import("../installer/tasks.ts")]);
      const out: UninstallOutcome = { removed: [], kept: [], packagesLeft: [] };
      process.stdout.write(`\nSteps (details in ${log.file}):\n`);
      await runTasks(uninstallTasks(INSTALL_PATHS, { purge: opts.purge ?? false }, out), log, printEvent);
      const lines = ["", "  Removed:", ...(out.removed.length > 0 ? out.removed.map((r) => `    ${r}`) : ["    nothing (it was not installed)"])];
      if (out.kept.length > 0) lines.push("  Kept (remove them with uninstall --purge):", ...out.kept.map((k) => `    ${k}`));
      if (out.packagesLeft.length > 0) lines.push(`  Left installed (other software may use them): ${out.packagesLeft.join(", ")}`);
      lines.push("  Backup repositories outside /var/lib/plum (backup.secondary, off-site) were not touched.", "");
      process.stdout.write(lines.join("\n"));
    });

  program
    .command("liveness-check")
    .description("check that the agent answers its control API; with --restart, restart the service after --misses misses in a row (plum-liveness.timer)")
    .option("--misses <n>", "misses in a row that restart the service", "3")
    .option("--timeout <seconds>", "how long the agent has to answer", "10")
    .option("--restart", "restart plum.service after that many misses (else only report)")
    .action(async (opts: { misses: string; timeout: string; restart?: boolean }) => {
      const misses = Number(opts.misses);
      const seconds = Number(opts.timeout);
      if (!Number.isInteger(misses) || misses < 1) throw new PlumError(`--misses ${opts.misses} is not a positive number`, { hint: "e.g. --misses 3" });
      if (!Number.isInteger(seconds) || seconds <= 0)
        throw new PlumError(`--timeout ${opts.timeout} is not a number of seconds`, { hint: "e.g. --timeout 10" });
      const { livenessCheck } = await import("../installer/liveness.ts");
      const verdict = await livenessCheck(resolveHome(), { timeoutMs: seconds * 1000, misses });
      process.stdout.write(`${verdict.alive ? "alive" : `no answer (${verdict.misses} of ${misses})`}: ${verdict.said}\n`);
      if (verdict.restart && opts.restart) {
        const { systemctl } = await import("../installer/service-manager.ts");
        process.stdout.write(`the agent did not answer ${misses} times in a row: restarting plum.service\n`);
        await systemctl(["restart", "--no-block", INSTALL_PATHS.unitName]);
      }
    });

  program
    .command("wait-ready")
    .description("wait until the agent serves (edge proxy /readyz and the console); the service unit's start waits on it")
    .option("--timeout <seconds>", "give up after this long", "600")
    .option("--pid <pid>", "give up at once when this process exits (default: $MAINPID, which systemd sets for ExecStartPost)")
    .action(async (opts: { timeout: string; pid?: string }) => {
      const seconds = Number(opts.timeout);
      if (!Number.isInteger(seconds) || seconds <= 0)
        throw new PlumError(`--timeout ${opts.timeout} is not a number of seconds`, { hint: "e.g. --timeout 600" });
      const pid = Number(opts.pid ?? process.env.MAINPID);
      const { waitUntilServing } = await import("../installer/serving.ts");
      const serving = await waitUntilServing(resolveHome(), seconds * 1000, { pid: Number.isInteger(pid) && pid > 0 ? pid : undefined });
      process.stdout.write(`serving: ${serving.proxyUrl} (console ${serving.consoleUrl})\n`);
    });
}

/**
 * The recovery kit before anything is removed: without it, a purge would leave the off-site backups unreadable.
 * A purge that cannot print it stops (the agent's PostgreSQL answers only while the service runs).
 */
async function printRecoveryKit(purge: boolean): Promise<void> {
  try {
    const [{ recoveryKit }, { withBackupContext }, { readFileSync }, { installedConfig }] = await Promise.all([
      import("../backup/recovery-kit.ts"),
      import("./with-backup-context.ts"),
      import("node:fs"),
      import("../installer/install.ts"),
    ]);
    const doc = readFileSync(path.join(CODE_ROOT, "backup", "restore", "plain-restore.md"), "utf8");
    const kit = await withBackupContext(installedConfig(INSTALL_PATHS), async (ctx, db) => {
      const text = await recoveryKit(ctx, doc);
      await db.audit.append({ actor: "cli", action: "backup.recovery-kit", detail: { shown: "stdout of plumctl uninstall" } });
      return text;
    });
    process.stdout.write(`Recovery kit (keep it, apart from this host: the off-site backups cannot be read without it):\n${kit}\n`);
  } catch (err) {
    const why = describeError(err)
      .split("\n")[0]
      .replace(/^error: /, "");
    if (purge)
      throw new PlumError(`the recovery kit cannot be printed (${why}), and --purge would destroy the only copy of the backups' password`, {
        hint: "start the service (systemctl start plum) and run uninstall --purge again, or uninstall without --purge",
      });
    process.stdout.write(`The recovery kit could not be printed (${why}); the data and secrets stay in ${INSTALL_PATHS.home}.\n`);
  }
}
