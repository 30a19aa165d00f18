import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { expect } from "chai";
import { APP_ROOT } from "../../lib/paths.ts";
import { listenFdsFrom, listenStreamOf } from "../../lib/systemd-sockets.ts";
import { waitFor } from "../../lib/wait.ts";
import { freePort } from "../support/ports.ts";

describe("systemd socket activation (LISTEN_FDS)", () => {
  it("names the fds passed to this process, from fd 3 on", () => {
    const fds = listenFdsFrom({ LISTEN_PID: "42", LISTEN_FDS: "2", LISTEN_FDNAMES: "proxy:console" }, 42);
    expect([...fds]).to.deep.equal([
      ["proxy", 3],
      ["console", 4],
    ]);
  });

  it("takes none meant for another process, none without a count, and names unnamed fds unknown", () => {
    expect(listenFdsFrom({ LISTEN_PID: "41", LISTEN_FDS: "1", LISTEN_FDNAMES: "proxy" }, 42).size).to.equal(0);
    expect(listenFdsFrom({ LISTEN_FDS: "1", LISTEN_FDNAMES: "proxy" }, 42).size).to.equal(0);
    expect(listenFdsFrom({ LISTEN_PID: "42", LISTEN_FDS: "x" }, 42).size).to.equal(0);
    expect(listenFdsFrom({ LISTEN_PID: "42", LISTEN_FDS: "0" }, 42).size).to.equal(0);
    expect([...listenFdsFrom({ LISTEN_PID: "42", LISTEN_FDS: "2", LISTEN_FDNAMES: ":console" }, 42)]).to.deep.equal([
      ["unknown", 3],
      ["console", 4],
    ]);
    // Two sockets of one name (a unit with two ListenStream=): the first.
    expect([...listenFdsFrom({ LISTEN_PID: "42", LISTEN_FDS: "2", LISTEN_FDNAMES: "proxy:proxy" }, 42)]).to.deep.equal([["proxy", 3]]);
  });

  it("writes ListenStream= with IPv6 addresses in brackets", () => {
    expect(listenStreamOf("0.0.0.0", 8080)).to.equal("0.0.0.0:8080");
    expect(listenStreamOf("::", 8800)).to.equal("[::]:8800");
    expect(listenStreamOf("127.0.0.1", 80)).to.equal("127.0.0.1:80");
  });

  it("an edge proxy restarted on a passed socket refuses no request: the backlog holds them meanwhile", async function () {
    this.timeout(60_000);
    // Two upstreams: which one answered says which proxy process served.
    const answered = { first: 0, second: 0 };
    const upstreams = await Promise.all(
      (["first", "second"] as const).map(async (name) => {
        const server = http.createServer((req, res) => {
          answered[name]++;
          setTimeout(() => res.end(name), 5); // in flight while the proxy stops
        });
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
        return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
      }),
    );
    const port = await freePort();
    const child = path.join(APP_ROOT, "test", "support", "passed-socket-proxy.ts");
    // systemd-socket-activate holds the socket like systemd: the shell it runs keeps fd 3 open while the proxy
    // stops and the next one starts, each told the socket is its own (LISTEN_PID) as systemd tells plum.service.
    const script = [
      `sh -c 'LISTEN_PID=$$ exec "$0" --import tsx "$1" "$2"' "$NODE" "$CHILD" "$FIRST"`,
      `sh -c 'LISTEN_PID=$$ exec "$0" --import tsx "$1" "$2"' "$NODE" "$CHILD" "$SECOND"`,
    ].join("\n");
    const holder = spawn(
      "systemd-socket-activate",
      ["-l", `127.0.0.1:${port}`, "--fdname=proxy", ...["NODE", "CHILD", "FIRST", "SECOND"].map((k) => `-E${k}`), "sh", "-c", script],
      {
        cwd: APP_ROOT,
        env: { ...process.env, NODE: process.execPath, CHILD: child, FIRST: upstreams[0].url, SECOND: upstreams[1].url },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      },
    );
    let out = "";
    holder.stdout!.on("data", (d) => (out += d));
    holder.stderr!.on("data", (d) => (out += d));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const failures: string[] = [];
    let total = 0;
    let stop = false;
    const get = () =>
      new Promise<void>((resolve) => {
        total++;
        const req = http.get({ host: "127.0.0.1", port, path: "/", agent, timeout: 20_000 }, (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode !== 200) failures.push(`status ${res.statusCode}`);
            resolve();
          });
        });
        req.on("error", (err) => {
          failures.push(err.message);
          resolve();
        });
      });
    let loops: Array<Promise<void>> | undefined;
    try {
      await waitFor("systemd-socket-activate to listen", async () => out.includes("Listening on") || undefined, { timeoutMs: 10_000 });
      // The first connection starts the first proxy (socket activation); it waits in the backlog until then.
      loops = Array.from({ length: 4 }, async () => {
        while (!stop) await get();
      });
      const first = await waitFor("the first proxy to listen on the passed socket", async () => /listening pid=(\d+) fd=3/.exec(out)?.[1], {
        timeoutMs: 20_000,
      });
      await waitFor("requests through the first proxy", async () => answered.first > 50 || undefined, { timeoutMs: 20_000 });
      process.kill(Number(first), "SIGTERM");
      await waitFor("the second proxy to serve", async () => answered.second > 50 || undefined, { timeoutMs: 30_000 });
      stop = true;
      await Promise.all(loops ?? []);
      expect(out).to.match(new RegExp(`listening pid=(?!${first}\\b)\\d+ fd=3 port=${port}`));
      expect(failures, out).to.deep.equal([]);
      expect(total).to.be.greaterThan(100);
    } finally {
      stop = true;
      agent.destroy();
      try {
        process.kill(-holder.pid!, "SIGKILL");
      } catch {
        // already gone
      }
      for (const u of upstreams) u.server.close();
    }
  });
});
