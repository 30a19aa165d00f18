import type { Command } from "commander";
import { describeChange } from "../lib/db/data-changes.ts";
import { describeUndeclared } from "../appliance/upgrade/data-gate.ts";
import { loadConfig } from "../lib/config.ts";
import { PlumError } from "../lib/errors.ts";
import { sleep } from "../lib/wait.ts";
import { agentLink, callAgent, requiredAgentLink } from "../appliance/control/control-client.ts";
import { withOpsDatabase } from "../appliance/ops-database.ts";
import { printAnchoredVerdict } from "./chain-verdict.ts";
import { UpgradeJournal, type Upgrade } from "../appliance/upgrade/upgrade-journal.ts";

type Status = { active?: Upgrade; latest?: Upgrade; journal: Array<{ at: string; step: string; phase: string; detail: Record<string, unknown> }> };

function agentCall<T>(method: "GET" | "POST", route: string, body?: unknown): Promise<T> {
  return callAgent<T>(requiredAgentLink(loadConfig().home), method, route, body);
}

/** A few lines for a terminal: the upgrade, where it is, and what it decided. */
export function describeUpgrade(s: Status): string {
  const u = s.latest;
  if (!u) return "no upgrade has run on this appliance\n";
  const lines = [`upgrade ${u.id} (${u.kind}): ${u.fromVersion} → ${u.toVersion}  status ${u.status}, step ${u.step}${u.error ? `\n  ${u.error}` : ""}`];
  if (u.rollbackMode) lines.push(`  rollback mode: ${u.rollbackMode} (${u.report.rollbackMode?.why ?? ""})`);
  if (u.status === "waiting")
    lines.push(`  waits for ${u.promotion === "approval" ? "an admin's approval: `plumctl upgrade approve`" : "the maintenance window"}`);
  if (u.status === "restore-pending")
    lines.push(
      `  the rollback needs the pre-upgrade snapshot restored, losing writes from ${u.report.rollback?.writeWindow?.from} to ${u.report.rollback?.writeWindow?.to}: \`plumctl upgrade confirm-restore\``,
    );
  for (const [step, t] of Object.entries(u.report.steps ?? {}))
    lines.push(`  ${step.padEnd(9)} ${t.outcome ?? "running"}${t.seconds !== undefined ? ` in ${t.seconds.toFixed(1)} s` : ""}`);
  lines.push(...describeDataGate(u));
  return lines.join("\n") + "\n";
}

/** What the data-diff gate decided, and every change the release declares with what was measured: for the admin to read before approving. */
function describeDataGate(u: Upgrade): string[] {
  const g = u.report.dataGate;
  if (!g) return [];
  const lines = [`  data gate: ${g.verdict ?? "measured by stage, judged first thing in validate"}${g.hold ? ` (${g.hold})` : ""}`];
  for (const d of g.declared ?? [])
    lines.push(`    declared by ${d.migration}: ${describeChange(d)}${d.measured ? `; measured: ${d.measured}` : ""}${d.note ? ` (${d.note})` : ""}`);
  for (const d of g.undeclared ?? []) lines.push(`    NOT declared: ${describeUndeclared(d)}`);
  for (const line of g.unread ?? []) lines.push(`    not read by the bundle builder: ${typeof line === "string" ? line : JSON.stringify(line)}`);
  return lines;
}

/** The same status as the agent gives, read from plum_ops (the agent is stopped, or was killed mid-upgrade). */
function statusFromDatabase(): Promise<Status> {
  return withOpsDatabase(loadConfig(), async (db) => {
    const journal = new UpgradeJournal(db.sequelize);
    const active = await journal.active();
    const latest = active ?? (await journal.latest());
    const entries = latest ? await journal.entries(latest.id) : [];
    return JSON.parse(JSON.stringify({ active, latest, journal: entries })) as Status;
  });
}

const SETTLED = ["waiting", "completed", "aborted", "rolled-back", "failed", "restore-pending"];

/** Follow an upgrade until it settles (or `timeoutMs`), printing each new journal line. */
async function follow(id: number, timeoutMs: number): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  let printed = 0;
  for (;;) {
    // An agent upgrade restarts the agent: its control socket is away for a moment, then the new agent answers.
    const s = await (async () => agentCall<Status>("GET", "/upgrades"))().catch((err: unknown) => {
      if (Date.now() > deadline) throw err;
      return undefined;
    });
    if (s?.latest?.id === id) {
      for (const e of s.journal.slice(printed)) process.stderr.write(`  ${e.at.slice(11, 19)} ${e.step} ${e.phase}\n`);
      printed = s.journal.length;
      if (SETTLED.includes(s.latest.status)) return s;
    }
    if (Date.now() > deadline)
      throw new PlumError(`upgrade ${id} has not settled after ${Math.round(timeoutMs / 1000)} s`, {
        hint: "it goes on in the agent: follow it with `plumctl upgrade status`",
      });
    await sleep(1000);
  }
}

function exitFor(s: Status): void {
  if (s.latest && ["aborted", "rolled-back", "failed"].includes(s.latest.status)) process.exitCode = 1;
}

export function register(program: Command): void {
  const upgrade = program.command("upgrade").description("upgrade production to an imported release: verify, snapshot, stage, validate, promote, soak");
  upgrade
    .command("start")
    .description("snapshot, stage and validate an imported release, then promote it as asked (prints the journal as it goes)")
    .argument("<version>", "an imported release (see `plumctl release list`)")
    .option("--now", "promote as soon as validation passes")
    .option("--window", "promote in the next maintenance window (upgrades.window)")
    .option("--approve", "promote after an admin approves (`plumctl upgrade approve` or the console)")
    .option("--product", "of a release that carries a new agent: upgrade the product only (staged), not the agent")
    .option("--no-follow", "return at once instead of following it until it settles")
    .option("--timeout <seconds>", "how long to follow it", "3600")
    .action(async (version: string, opts: { now?: boolean; window?: boolean; approve?: boolean; product?: boolean; follow: boolean; timeout: string }) => {
      const asked = [opts.now && "now", opts.window && "window", opts.approve && "approval"].filter(Boolean) as string[];
      if (asked.length > 1) throw new PlumError("choose one of --now, --window, --approve");
      const u = await agentCall<Upgrade>("POST", "/upgrades", { version, promotion: asked[0], ...(opts.product && { product: true }) });
      process.stdout.write(`upgrade ${u.id} started: ${u.fromVersion} → ${u.toVersion}\n`);
      if (!opts.follow) return;
      const s = await follow(u.id, Number(opts.timeout) * 1000);
      process.stdout.write(describeUpgrade(s));
      exitFor(s);
    });
  upgrade
    .command("status")
    .description("the running (or last) upgrade: steps, decisions, journal; read from plum_ops when the agent is not running")
    .option("--json", "the upgrade, its report and its journal as JSON")
    .action(async (opts: { json?: boolean }) => {
      const config = loadConfig();
      const link = agentLink(config.home);
      const s = link ? await callAgent<Status>(link, "GET", "/upgrades") : await statusFromDatabase();
      process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + "\n" : describeUpgrade(s));
    });
  upgrade
    .command("verify")
    .description("check the upgrade journal's hash chain; exits 1 and names the first bad row")
    .option("--json", "the verdict as JSON")
    .action((opts: { json?: boolean }) =>
      withOpsDatabase(loadConfig(), async (db) =>
        printAnchoredVerdict("upgrade journal", await new UpgradeJournal(db.sequelize).verifyAnchored(db.anchors), opts.json),
      ),
    );
  upgrade
    .command("history")
    .description("every upgrade and rollback, newest first")
    .option("--json", "as JSON, with reports")
    .action((opts: { json?: boolean }) =>
      withOpsDatabase(loadConfig(), async (db) => {
        const all = await new UpgradeJournal(db.sequelize).history(200);
        if (opts.json) process.stdout.write(JSON.stringify(all, null, 2) + "\n");
        else
          for (const u of all)
            process.stdout.write(
              `${u.id}\t${u.kind}\t${u.fromVersion} → ${u.toVersion}\t${u.status}\t${new Date(u.createdAt).toISOString()}${u.error ? `\t${u.error}` : ""}\n`,
            );
      }),
    );
  for (const [name, route, what] of [
    ["approve", "/upgrades/approve", "approve the waiting upgrade's promotion"],
    ["abort", "/upgrades/abort", "abort an upgrade before promotion (staging torn down, production untouched)"],
    ["confirm-restore", "/upgrades/confirm-restore", "let a rollback restore the pre-upgrade snapshot (losing the writes since it was taken)"],
  ] as const) {
    upgrade
      .command(name)
      .description(what)
      .action(async () => {
        const u = await agentCall<Upgrade>("POST", route);
        const pending = name === "abort" && u.status !== "aborted" ? " (abort requested: staging is torn down when the current step ends)" : "";
        process.stdout.write(`upgrade ${u.id}: ${u.status} at ${u.step}${pending}\n`);
      });
  }

  program
    .command("rollback")
    .description("go back: roll back the upgrade being soaked, or switch production to a retained release (default: the one before)")
    .option("--to <version>", "a retained release (see `plumctl release list`)")
    .option("--no-follow", "return at once")
    .option("--timeout <seconds>", "how long to follow it", "3600")
    .action(async (opts: { to?: string; follow: boolean; timeout: string }) => {
      const u = await agentCall<Upgrade>("POST", "/rollback", opts.to ? { to: opts.to } : {});
      process.stdout.write(
        `rollback under upgrade ${u.id}: ${u.kind === "rollback" ? `${u.fromVersion} → ${u.toVersion}` : `${u.toVersion} → ${u.fromVersion}`}\n`,
      );
      if (!opts.follow) return;
      const s = await follow(u.id, Number(opts.timeout) * 1000);
      process.stdout.write(describeUpgrade(s));
      exitFor(s);
    });
}
