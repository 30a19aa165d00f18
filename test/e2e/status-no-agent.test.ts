import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import type { StatusReport } from "../../appliance/status/status-report.ts";
import { writeAgentEndpoint } from "../../appliance/control/control-client.ts";
import { APP_VERSION } from "../../lib/version.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { compiledPlumctl } from "../support/compiled-plumctl.ts";
import { plumctl } from "../support/plumctl.ts";
import { freePort } from "../support/ports.ts";

/**
 * `plumctl status` with no agent to ask: it answers at once from what the host shows (the agent's pid file,
 * disk left) and exits 1. The real agent's report is test/slow/status-cli.test.ts.
 */
describe("plumctl status without a running agent", function () {
  this.timeout(60_000);
  let home: string;
  let env: Record<string, string>;
  const runDir = () => path.join(home, "run");

  // Built before the clock starts: the first plumctl of a run compiles the tree.
  before(() => compiledPlumctl());

  beforeEach(() => {
    home = tempHome();
    mkdirSync(runDir(), { recursive: true });
    env = { PLUM_HOME: home };
  });
  afterEach(() => removeHome(home));

  async function status(): Promise<{ code: number; report: StatusReport; text: string; ms: number }> {
    const started = Date.now();
    const json = await plumctl(["status", "--json"], env, 30_000);
    const ms = Date.now() - started;
    const text = await plumctl(["status"], env, 30_000);
    expect(text.code, text.stderr).to.equal(json.code);
    return { code: json.code, report: JSON.parse(json.stdout) as StatusReport, text: text.stdout, ms };
  }

  it("never started: exit 1, the agent not running, how to start it, and the disk left", async () => {
    const { code, report, text, ms } = await status();
    expect(code).to.equal(1);
    expect(ms, "answers at once").to.be.below(5000);
    expect(report.verdict).to.equal("degraded");
    expect(report.reasons).to.deep.equal(["the agent is not running"]);
    expect(report.agent).to.include({ running: false, answering: false, version: null, pid: null, startedAt: null, pidFile: path.join(runDir(), "agent.pid") });
    expect(report.disk.map((d) => [d.what, d.path])).to.deep.equal([
      ["home", home],
      ["primary repository", path.join(home, "backups", "primary")],
    ]);
    expect(text.split("\n")[0]).to.equal(`Plum appliance ${APP_VERSION}: degraded: the agent is not running`);
    expect(text).to.match(/^ {2}agent +not running; start it: `npm start` from a checkout, or the plum service/m);
  });

  it("killed: its pid file and endpoint name a pid that is gone, which status reports", async () => {
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    writeFileSync(path.join(runDir(), "agent.pid"), `${gone}\n`);
    writeAgentEndpoint(runDir(), { pid: gone, consoleUrl: "http://127.0.0.1:1", control: { socket: path.join(runDir(), "control.sock") } });
    const { code, report, text } = await status();
    expect(code).to.equal(1);
    expect(report.reasons).to.deep.equal(["the agent is not running"]);
    expect(report.agent).to.include({ running: false, pid: gone });
    expect(text).to.include(`not running (pid file ${path.join(runDir(), "agent.pid")} names ${gone}, gone)`);
  });

  it("an endpoint whose control listener refuses: the reason says how the agent failed to answer", async () => {
    const closed = await freePort();
    mkdirSync(path.join(home, "secrets"), { recursive: true });
    writeFileSync(path.join(home, "secrets", "control-token"), "x".repeat(64) + "\n", { mode: 0o600 });
    // A live process that is no agent: named by the endpoint file, not holding the agent lock.
    writeAgentEndpoint(runDir(), { pid: process.pid, consoleUrl: "http://127.0.0.1:1", control: { url: `http://127.0.0.1:${closed}` } });
    const { code, report } = await status();
    expect(code).to.equal(1);
    expect(report.reasons).to.have.length(2);
    expect(report.reasons[0]).to.equal("the agent is not running");
    expect(report.reasons[1]).to.match(/^the agent stopped answering while telling its status \(it refused the connection at http:\/\/127\.0\.0\.1:\d+\)/);
  });
});
