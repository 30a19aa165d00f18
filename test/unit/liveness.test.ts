import { expect } from "chai";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { writeAgentEndpoint } from "../../appliance/control/control-client.ts";
import { homeLayout } from "../../lib/paths.ts";
import { livenessCheck, livenessServiceUnit } from "../../installer/liveness.ts";
import { INSTALL_PATHS } from "../../installer/install-layout.ts";
import { runTempDir } from "../support/run-dir.ts";

/**
 * The liveness check against a control listener of its own on a Unix socket, named by agent.json as a running
 * agent names it: one that answers, and one that takes the connection and never answers (a hung agent).
 */
describe("the agent's liveness check (plum-liveness.timer)", () => {
  let home: string;
  let server: Server;
  let answering = true;

  before(async () => {
    home = runTempDir("plum-liveness-");
    const layout = homeLayout(home, {});
    mkdirSync(layout.runDir, { recursive: true });
    mkdirSync(layout.secretsDir, { recursive: true, mode: 0o700 });
    writeFileSync(path.join(layout.secretsDir, "control-token"), "t".repeat(32), { mode: 0o600 });
    const socket = path.join(layout.runDir, "control.sock");
    server = createServer((req, res) => {
      if (!answering) return; // the connection stays open, unanswered
      expect(req.url).to.equal("/control/jobs");
      expect(req.headers.authorization).to.equal(`Bearer ${"t".repeat(32)}`);
      res.setHeader("content-type", "application/json");
      res.end("[]");
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    writeAgentEndpoint(layout.runDir, { pid: process.pid, consoleUrl: "http://127.0.0.1:1", control: { socket } });
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("counts misses in a row, restarts at the limit, and starts again from zero once the agent answers", async () => {
    const check = () => livenessCheck(home, { timeoutMs: 300, misses: 3 });
    expect(await check()).to.deep.include({ alive: true, said: "answered", misses: 0, restart: false });
    answering = false;
    const first = await check();
    expect(first).to.deep.include({ alive: false, misses: 1, restart: false });
    expect(first.said).to.match(/did not answer|timed out|aborted/i);
    expect(await check()).to.deep.include({ alive: false, misses: 2, restart: false });
    expect(await check()).to.deep.include({ alive: false, misses: 3, restart: true });
    // The restart resets the count: the next agent gets its own three chances.
    expect(await check()).to.deep.include({ misses: 1, restart: false });
    answering = true;
    expect(await check()).to.deep.include({ alive: true, misses: 0 });
    answering = false;
    expect(await check()).to.deep.include({ misses: 1 }, "a miss after an answer counts from one");
    answering = true;
  });

  it("an agent that is not running is not a miss (a crash is systemd's to restart)", async () => {
    const other = runTempDir("plum-liveness-none-");
    expect(await livenessCheck(other, { timeoutMs: 300, misses: 1 })).to.deep.equal({ alive: true, said: "not running", misses: 0, restart: false });
  });

  it("its unit runs the check without capabilities, writing only PLUM_HOME/run", () => {
    const unit = livenessServiceUnit(INSTALL_PATHS);
    expect(unit.split("\n")).to.include.members([
      "Type=oneshot",
      "CapabilityBoundingSet=",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ReadWritePaths=/var/lib/plum/run",
      "ExecStart=/opt/plum/current/node/bin/node /opt/plum/current/app/bin/plumctl.js liveness-check --misses 3 --restart",
    ]);
  });
});
