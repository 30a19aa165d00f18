import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { expect } from "chai";
import { writeAgentEndpoint } from "../../appliance/control/control-client.ts";
import { portsFree } from "../../installer/checks/ports.ts";
import { loadConfig } from "../../lib/config.ts";
import { waitFor } from "../../lib/wait.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";

/**
 * The doctor's ports check beside a running install: a port held by this PLUM_HOME's agent (its endpoint file
 * and its lock name the same live agent) is no conflict; a port held by anything else is, even when a stale
 * endpoint file names a live pid that is not the agent.
 */
describe("doctor: the ports check and this appliance's own agent", function () {
  this.timeout(30_000);
  let home: string;
  let holder: ChildProcess;
  let port: number;

  // A real process holding a real port; `agent` in its command line, as the agent's has (`plumctl agent`).
  before(async () => {
    home = tempHome();
    mkdirSync(path.join(home, "run"));
    const script = `const s = require("net").createServer().listen(0, "127.0.0.1", () => console.log(s.address().port)); setInterval(() => {}, 1e6);`;
    holder = spawn(process.execPath, ["-e", script, "agent"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    holder.stdout!.on("data", (d) => (out += d));
    port = await waitFor("the holder to listen", async () => Number(out.trim()) || undefined, { timeoutMs: 10_000 });
  });
  after(() => {
    holder?.kill("SIGKILL");
    removeHome(home);
  });

  const check = () =>
    portsFree.run({ config: loadConfig({ PLUM_HOME: home, PLUM_HTTP_HOST: "127.0.0.1", PLUM_HTTP_PORT: String(port), PLUM_CONSOLE_PORT: "0" }) });
  const name = (pid: number) =>
    writeAgentEndpoint(path.join(home, "run"), {
      pid,
      consoleUrl: "http://127.0.0.1:1",
      proxyUrl: `http://127.0.0.1:${port}`,
      control: { socket: "/nonexistent" },
    });

  it("the endpoint file and the agent lock name the process holding the port: ok, held by this appliance's agent", async () => {
    name(holder.pid!);
    writeFileSync(path.join(home, "run", "agent.pid"), `${holder.pid}\n`);
    expect(await check()).to.equal(`127.0.0.1:${port} in use by this appliance's agent (pid ${holder.pid}), 127.0.0.1:0`);
  });

  it("a stale endpoint file naming a live pid that holds no agent lock: the port is in use by something else", async () => {
    name(process.pid); // alive, but the lock names the other process
    const err = await check().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.equal(`in use: edge proxy (http.port) 127.0.0.1:${port}`);
  });

  it("no agent at all: the port in use is a conflict", async () => {
    name(holder.pid!);
    writeFileSync(path.join(home, "run", "agent.pid"), "999999999\n");
    const err = await check().catch((e: Error) => e);
    expect((err as Error).message).to.equal(`in use: edge proxy (http.port) 127.0.0.1:${port}`);
    // And free ports pass.
    const free = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    expect(
      await portsFree.run({ config: loadConfig({ PLUM_HOME: home, PLUM_HTTP_HOST: "127.0.0.1", PLUM_HTTP_PORT: String(free), PLUM_CONSOLE_PORT: "0" }) }),
    ).to.equal(`127.0.0.1:${free}, 127.0.0.1:0`);
  });
});
