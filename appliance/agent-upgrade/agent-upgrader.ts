import { existsSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import semver from "semver";
import { runChild } from "../../lib/child-process.ts";
import { isSymlink, pointLinkAt } from "../../lib/symlinks.ts";
import { PlumError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { serviceOfThisProcess } from "../../lib/systemd-service.ts";
import { notAServiceError, type RestartOutcome } from "../agent-restart.ts";
import type { AuditEvent } from "../audit/audit-log.ts";
import { NODE_MEMBER, type BundleManifest } from "../releases/bundle-manifest.ts";
import type { Upgrade, UpgradeJournal } from "../upgrade/upgrade-journal.ts";
import { clearTrialOutcome, removeTrial, trialOutcomeFor, writeTrial } from "./agent-trial.ts";

/** How long the new agent has to serve before the guard's timer switches back (its start adopts, so a minute or two). */
export const TRIAL_DEADLINE_MS = 5 * 60_000;

/**
 * Where an installed agent lives: /opt/plum/<version>/app is its tree, /opt/plum/current names the release the
 * service runs, /opt/plum/agent-guard.sh judges the next start. Undefined: not installed so (a checkout, Docker).
 */
export interface InstalledAgent {
  optDir: string;
  current: string;
  guard: string;
  releaseDir(version: string): string;
}

export function installedAgentOf(appRoot: string, version: string): InstalledAgent | undefined {
  const releaseDir = path.dirname(appRoot);
  const optDir = path.dirname(releaseDir);
  const current = path.join(optDir, "current");
  if (path.basename(appRoot) !== "app" || path.basename(releaseDir) !== version) return undefined;
  if (!isSymlink(current) || !existsSync(path.join(optDir, "agent-guard.sh"))) return undefined;
  return { optDir, current, guard: path.join(optDir, "agent-guard.sh"), releaseDir: (v) => path.join(optDir, v) };
}

/** The trial's deadline timer (systemd-run), stopped; none there is fine. */
async function stopDeadline(upgradeId: number): Promise<void> {
  await runChild(["systemctl", "stop", `plum-agent-trial-${upgradeId}.timer`], { timeoutMs: 15_000 }).catch(() => undefined);
}

/** Point `current` at `version`, atomically (a rename over the link). */
function switchCurrent(agent: InstalledAgent, version: string): void {
  pointLinkAt(agent.current, version);
}

export interface AgentUpgraderDeps {
  home: string;
  /** The running agent's version. */
  version: string;
  /** Undefined: not an installed agent (the upgrade is refused with why). */
  installed: InstalledAgent | undefined;
  journal: UpgradeJournal;
  audit: { append(event: AuditEvent): Promise<unknown> };
  log: Logger;
  releases: { manifest(version: string): BundleManifest; ref(version: string): { dir: string } };
  /** The verify step's checks of the stored release (signature, upgrade path); throws what fails. */
  recheck(version: string, current: string): Promise<string[]>;
  /** A pre-upgrade backup set (it protects plum_ops, which the new agent migrates at its start). */
  snapshot(tag: string): Promise<{ setId: string; takenAt: Date }>;
  /** The restart with a handover (the instances and PostgreSQL keep serving). */
  restart(): Promise<RestartOutcome>;
  /** The service this agent runs as (default: from its cgroup). */
  service?: () => string | undefined;
  /**
   * What production serves and its schema. An agent upgrade replaces the agent, not the product's data: a
   * release whose product schema differs goes first through the staged product upgrade (`--product`).
   */
  production?: () => Promise<{ version: string; schemaVersion: string }>;
  trialDeadlineMs?: number;
}

/**
 * The upgrade of the agent itself, journaled in plum_ops like a product upgrade (the same lock):
 *   verify   the stored release's signature and upgrade path; it carries an agent (manifest.agent)
 *   snapshot a pre-upgrade backup set
 *   promote  /opt/plum/<to> unpacked (.partial, then renamed: the app and its Node runtime), the trial recorded
 *            (PLUM_HOME/run/agent-trial), /opt/plum/current switched to it, the guard's deadline timer set
 *   soak     the restart with a handover; the new agent adopts what runs, serves, and ends the trial (atStart)
 * A failure before the switch leaves the running agent as it was; after it, the guard switches back.
 */
export class AgentUpgrader {
  constructor(private readonly deps: AgentUpgraderDeps) {}

  /** Whether the release carries a new agent (then `plumctl upgrade start` of it is an agent upgrade). */
  carriesAgent(version: string): boolean {
    try {
      return this.deps.releases.manifest(version).agent !== undefined;
    } catch {
      return false;
    }
  }

  /** Start it (refused with why, before anything is written); resolves with its journal row, the rest goes on meanwhile. */
  async start(input: { version: string; actor: string }): Promise<Upgrade> {
    const { deps } = this;
    const to = input.version;
    const manifest = deps.releases.manifest(to); // throws with a hint when the release was not imported
    if (!manifest.agent) throw new PlumError(`${to} carries no agent`, { hint: "build it with `npm run bundle -- --agent`, or upgrade the product with it" });
    if (!semver.gt(to, deps.version)) throw new PlumError(`${to} is not newer than the running agent ${deps.version}`);
    if (!(deps.service ?? serviceOfThisProcess)()) throw notAServiceError("an agent upgrade");
    if (!deps.installed)
      throw new PlumError("an agent upgrade needs the installed layout (/opt/plum/<version>/app, /opt/plum/current, /opt/plum/agent-guard.sh)", {
        hint: "install the appliance with `plumctl install` from the install bundle, or run `plumctl install` again to repair it",
      });
    const production = await deps.production?.();
    if (production && production.schemaVersion !== manifest.schemaVersion)
      throw new PlumError(
        `${to} carries a new agent and a product schema (${manifest.schemaVersion}) that production (${production.version}, schema ${production.schemaVersion}) does not have yet: its migrations would run on production without staging`,
        {
          hint: `upgrade the product first, staged and validated: plumctl upgrade start ${to} --product (then, once it completes, plumctl upgrade start ${to} replaces the agent)`,
        },
      );
    const u = await deps.journal.create({ kind: "agent", fromVersion: deps.version, toVersion: to, promotion: "now", requestedBy: input.actor });
    await deps.audit.append({ actor: input.actor, action: "agent.upgrade.start", target: `upgrade:${u.id}`, detail: { from: deps.version, to } });
    void this.run(u).catch((err) => deps.log.error({ err, upgrade: u.id }, "the agent upgrade failed"));
    return u;
  }

  private async step<T>(u: Upgrade, step: Upgrade["step"], work: () => Promise<T>): Promise<T> {
    await this.deps.journal.update(u.id, { step });
    await this.deps.journal.note(u.id, step, "started", {});
    const result = await work();
    await this.deps.journal.note(u.id, step, "done", (result ?? {}) as Record<string, unknown>);
    return result;
  }

  private async run(u: Upgrade): Promise<void> {
    const { deps } = this;
    const agent = deps.installed!;
    const to = u.toVersion;
    const target = agent.releaseDir(to);
    const partial = `${target}.partial`;
    let switched = false;
    try {
      await this.step(u, "verify", async () => ({ checks: await deps.recheck(to, deps.version) }));
      await this.step(u, "snapshot", async () => {
        const set = await deps.snapshot(`upgrade:${u.id}`);
        await deps.journal.update(u.id, { snapshotSetId: set.setId, snapshotAt: set.takenAt });
        return { setId: set.setId };
      });
      await this.step(u, "promote", async () => {
        const installedBefore = existsSync(path.join(target, ".installed"));
        if (!installedBefore) {
          const from = deps.releases.ref(to).dir;
          rmSync(partial, { recursive: true, force: true });
          // 0755, whatever the service's umask: the instances' and PostgreSQL's users run from this release.
          await runChild(["mkdir", "-m", "0755", "-p", partial], { timeoutMs: 10_000 });
          await runChild(["cp", "-a", from, path.join(partial, "app")], { timeoutMs: 10 * 60_000, what: `cp (${to} into ${agent.optDir})` });
          await runChild(["tar", "-x", "-z", "-f", path.join(from, NODE_MEMBER), "-C", partial, "--no-same-owner", "node"], {
            timeoutMs: 5 * 60_000,
            what: `tar (the Node runtime of ${to})`,
          });
          rmSync(path.join(partial, "app", NODE_MEMBER), { force: true });
          // Readable by all, as install lays a release out: the service's umask (0027) made the imported tree private.
          await runChild(["chmod", "-R", "u+rwX,go+rX,go-w", partial], { timeoutMs: 5 * 60_000, what: `chmod (${partial})` });
          writeFileSync(path.join(partial, ".installed"), `${new Date().toISOString()} agent upgrade ${u.id}\n`, { mode: 0o644 });
          rmSync(target, { recursive: true, force: true });
          renameSync(partial, target);
        }
        writeTrial(deps.home, { from: deps.version, to, upgrade: u.id, started: new Date().toISOString(), starts: 0 });
        switchCurrent(agent, to);
        switched = true;
        const deadline = await this.armDeadline(u, agent).catch((err) => {
          // The start guard still catches a new agent that exits; only a hung one waits for the unit's start timeout.
          deps.log.warn({ err: (err as Error).message }, "the trial's deadline timer could not be set");
          return undefined;
        });
        return { installed: target, reused: installedBefore, current: readlinkSync(agent.current), deadlineTimer: deadline };
      });
      await deps.journal.update(u.id, { status: "soaking" });
      await this.step(u, "soak", async () => ({ restart: await deps.restart() }));
    } catch (err) {
      if (switched) {
        switchCurrent(agent, deps.version);
        removeTrial(deps.home);
      }
      await stopDeadline(u.id); // else it would fire on the next upgrade's trial
      rmSync(partial, { recursive: true, force: true });
      await deps.journal.update(u.id, { status: "failed", error: (err as Error).message });
      await deps.audit.append({
        actor: "agent",
        action: "agent.upgrade.fail",
        target: `upgrade:${u.id}`,
        outcome: "failure",
        detail: { error: (err as Error).message },
      });
      throw err;
    }
  }

  /** A transient timer (systemd-run) that runs the guard at the trial's deadline; named after the upgrade. */
  private async armDeadline(u: Upgrade, agent: InstalledAgent): Promise<string> {
    const unit = `plum-agent-trial-${u.id}`;
    const seconds = Math.ceil((this.deps.trialDeadlineMs ?? TRIAL_DEADLINE_MS) / 1000);
    await runChild(["systemd-run", `--unit=${unit}`, `--on-active=${seconds}`, "--timer-property=AccuracySec=1s", "/bin/sh", agent.guard, "deadline"], {
      timeoutMs: 30_000,
      what: "systemd-run (the agent trial's deadline)",
    });
    return `${unit}.timer`;
  }

  /**
   * At this agent's start, once it serves: the end of its own trial (completed), the rollback the guard made to
   * it from a newer agent (rolled back), or an agent upgrade that this agent left unfinished before its switch
   * (failed). Returns what it recorded, for the start's audit line.
   */
  async atStart(): Promise<string | undefined> {
    const { deps } = this;
    const outcome = trialOutcomeFor(deps.home, deps.version);
    const active = await deps.journal.active();
    if (outcome?.kind === "done") {
      const { trial } = outcome;
      // The trial ends first: a record that fails to be written must not let the guard roll a serving agent back.
      clearTrialOutcome(deps.home, "done");
      await stopDeadline(trial.upgrade);
      if (active?.kind === "agent" && active.id === trial.upgrade) await deps.journal.update(active.id, { status: "completed", step: "complete" });
      await deps.audit.append({
        actor: "agent",
        action: "agent.upgrade.complete",
        target: `upgrade:${trial.upgrade}`,
        detail: { from: trial.from, to: trial.to },
      });
      return `agent upgrade ${trial.from} → ${trial.to} completed`;
    }
    if (outcome?.kind === "rolled-back") {
      const { rollback } = outcome;
      const id = rollback.upgrade ?? active?.id;
      if (active?.kind === "agent" && active.id === id) await deps.journal.update(active.id, { status: "rolled-back", error: rollback.reason });
      await deps.audit.append({
        actor: "agent",
        action: "agent.upgrade.rollback",
        target: `upgrade:${id}`,
        outcome: "failure",
        detail: { from: rollback.from, to: rollback.to, reason: rollback.reason, at: rollback.at },
      });
      clearTrialOutcome(deps.home, "rolled-back");
      return `agent upgrade to ${rollback.from} rolled back to ${rollback.to}: ${rollback.reason}`;
    }
    if (active?.kind === "agent" && active.fromVersion === deps.version) {
      // This agent restarted before its switch (or the switch was undone by hand): nothing of it serves.
      const why = "interrupted before the new agent took over: the running agent is unchanged; start it again when ready";
      await deps.journal.update(active.id, { status: "failed", error: why });
      removeTrial(deps.home);
      await stopDeadline(active.id);
      return `agent upgrade ${active.id} ${why}`;
    }
    return undefined;
  }
}
