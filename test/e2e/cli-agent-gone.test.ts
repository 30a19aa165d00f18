import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { startChild, type RunningChild } from "../../lib/child-process.ts";
import { prepareHome } from "../../lib/home.ts";
import { waitFor } from "../../lib/wait.ts";
import { writeAgentEndpoint } from "../../appliance/control/control-client.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { compiledPlumctl } from "../support/compiled-plumctl.ts";
import { plumctl } from "../support/plumctl.ts";
import { freePort } from "../support/ports.ts";

/**
 * A stand-in for the agent's control listener, in a process of its own on loopback: it answers like the agent
 * begins to (202 and the job's first NDJSON lines), then goes away as `MODE` says — the whole process killed
 * by the test (SIGKILL), the socket closed or reset mid-answer, or closed before any answer.
 */
const STAND_IN = `
import http from "node:http";
const mode = process.env.MODE;
const server = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    if (mode === "close-before-answer") return req.socket.destroy();
    res.writeHead(202, { "content-type": "application/x-ndjson" });
    res.write(JSON.stringify({ type: "job", job: { id: "restore-1", kind: "restore", status: "running" } }) + "\\n");
    res.write(JSON.stringify({ type: "progress", line: "taking a pre-restore set" }) + "\\n");
    if (mode === "close-mid-answer") setTimeout(() => req.socket.destroy(), 50);
    if (mode === "reset-mid-answer") setTimeout(() => req.socket.resetAndDestroy(), 50);
    process.stdout.write("answering\\n");
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write("port " + server.address().port + "\\n"));
`;

describe("plumctl when the agent stops answering mid-request: one sentence and what to run, never a stack trace", function () {
  this.timeout(300_000);
  let home: string;
  let scripts: string;
  let standIn: string;
  let env: Record<string, string>;
  let running: { child: RunningChild; port: number; answering: () => boolean } | undefined;

  before(async () => {
    await compiledPlumctl(); // compiled once per run, before any deadline below counts
    home = tempHome();
    env = { PLUM_HOME: home };
    prepareHome(env); // plum.yaml and the control token plumctl sends
    scripts = mkdtempSync(path.join(tmpdir(), "plum-agent-stand-in-"));
    standIn = path.join(scripts, "stand-in.mjs");
    writeFileSync(standIn, STAND_IN);
  });
  afterEach(async () => {
    if (running?.child.pid) {
      try {
        process.kill(running.child.pid, "SIGKILL");
      } catch {
        // already gone (the test killed it)
      }
      await running.child.exit;
    }
    running = undefined;
  });
  after(() => {
    removeHome(home);
    rmSync(scripts, { recursive: true, force: true });
  });

  /** Start the stand-in and name it as this PLUM_HOME's running agent (run/agent.json, as the agent writes it). */
  async function standInAgent(mode: string): Promise<NonNullable<typeof running>> {
    let port = 0;
    let answering = false;
    const child = startChild([process.execPath, standIn], {
      env: { ...process.env, MODE: mode },
      timeoutMs: 100_000,
      stdout: (line) => {
        if (line.startsWith("port ")) port = Number(line.slice(5));
        if (line === "answering") answering = true;
      },
    });
    await waitFor("the stand-in to listen", async () => port || undefined, { timeoutMs: 20_000 });
    writeAgentEndpoint(path.join(home, "run"), { pid: child.pid!, consoleUrl: "http://127.0.0.1:1", control: { url: `http://127.0.0.1:${port}` } });
    running = { child, port, answering: () => answering };
    return running;
  }

  function expectSentence(res: { code: number; stdout: string; stderr: string }, sentence: RegExp, hint: RegExp): void {
    expect(res.code, res.stderr).to.equal(1);
    const lines = res.stderr.split("\n").filter((l) => !l.startsWith("  … "));
    expect(lines[0], res.stderr).to.match(sentence);
    expect(lines[1]).to.match(hint);
    expect(res.stderr).to.not.match(/TypeError|terminated|fetch failed|\n\s+at /);
  }

  it("`plumctl restore`: the agent killed (SIGKILL) while it streams the job", async () => {
    const agent = await standInAgent("stay");
    const restore = plumctl(["restore", "20261201T101010-abcdef", "--yes"], env);
    await waitFor("the stand-in to be answering", async () => agent.answering() || undefined, { timeoutMs: 60_000 });
    process.kill(agent.child.pid!, "SIGKILL");
    const res = await restore;
    expectSentence(
      res,
      new RegExp(
        `^error: the agent stopped answering while restoring set 20261201T101010-abcdef \\(it (closed|reset) the connection at http://127\\.0\\.0\\.1:${agent.port}\\); ` +
          `the agent \\(pid ${agent.child.pid}\\) has exited: it crashed, was killed or was stopped, and the restore may not have finished$`,
      ),
      /^ {2}hint: start it \(`npm start`, or the plum service\) .*: at start it finishes or undoes an interrupted restore; then `plumctl backup list` shows the sets/,
    );
    expect(res.stderr).to.include("  … taking a pre-restore set"); // what the agent had said before it went
  });

  it("`plumctl restore`: the connection closed, then reset, mid-answer by an agent that still runs", async () => {
    for (const [mode, how] of [
      ["close-mid-answer", "closed"],
      ["reset-mid-answer", "reset"],
    ] as const) {
      const agent = await standInAgent(mode);
      const res = await plumctl(["restore", "20261201T101010-abcdef", "--db", "--yes"], env);
      expectSentence(
        res,
        new RegExp(
          `^error: the agent stopped answering while restoring set 20261201T101010-abcdef \\(it ${how} the connection at http://127\\.0\\.0\\.1:${agent.port}\\); ` +
            `the agent \\(pid ${agent.child.pid}\\) still runs: it may be stopping, restarting or stuck, and the restore may not have finished$`,
        ),
        /^ {2}hint: start it /,
      );
      process.kill(agent.child.pid!, "SIGKILL");
      await agent.child.exit;
      running = undefined;
    }
  });

  it("`plumctl backup run` and `plumctl upgrade start`: closed before any answer, and refused", async () => {
    const agent = await standInAgent("close-before-answer");
    const backup = await plumctl(["backup", "run"], env);
    expectSentence(
      backup,
      /^error: the agent stopped answering while taking a manual backup set \(it closed the connection at .*\); the agent \(pid \d+\) still runs: .*, and the set may not be complete$/,
      /^ {2}hint: `plumctl backup list` shows whether it succeeded; start it /,
    );

    // The agent's file names a live process whose listener is gone: nothing accepts on that port any more.
    const closed = await freePort();
    writeAgentEndpoint(path.join(home, "run"), { pid: agent.child.pid!, consoleUrl: "http://127.0.0.1:1", control: { url: `http://127.0.0.1:${closed}` } });
    const upgrade = await plumctl(["upgrade", "start", "0.2.0", "--now"], env);
    expectSentence(
      upgrade,
      new RegExp(
        `^error: the agent stopped answering while running the upgrade \\(it refused the connection at http://127\\.0\\.0\\.1:${closed}\\); ` +
          "the agent \\(pid \\d+\\) still runs: .*, and the upgrade is resumed or undone when the agent starts again$",
      ),
      /^ {2}hint: `plumctl upgrade status` reads the upgrade journal even while the agent is down; start it /,
    );
  });
});
