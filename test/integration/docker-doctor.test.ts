import { expect } from "chai";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig, type PlumConfig } from "../../lib/config.ts";
import { connectDocker, engineFacts } from "../../lib/docker/engine.ts";
import { PlumError } from "../../lib/errors.ts";
import { checkDockerEngine, dataRootSpace, dockerEngine } from "../../installer/checks/docker-engine.ts";
import { ALL_CHECKS } from "../../installer/checks/index.ts";
import { testDocker } from "../support/docker-engine.ts";

async function failure(work: Promise<unknown>): Promise<PlumError> {
  try {
    await work;
  } catch (err) {
    expect(err).to.be.instanceOf(PlumError);
    return err as PlumError;
  }
  throw new Error("expected the check to fail");
}

/** A Unix socket that speaks the engine's HTTP API with the given answers (an engine older or odder than ours). */
async function engineLike(socketPath: string, answers: Record<string, { status?: number; body: unknown }>): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const answer = answers[(req.url ?? "").split("?")[0]];
    res.writeHead(answer?.status ?? (answer ? 200 : 404), { "content-type": "application/json" });
    res.end(JSON.stringify(answer?.body ?? { message: "page not found" }));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return server;
}

describe("doctor: the Docker engine check (runtime.kind docker)", function () {
  this.timeout(60_000);
  let dir: string;
  const servers: (http.Server | net.Server)[] = [];
  const sockets: net.Socket[] = [];

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "plum-docker-doctor-"));
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    for (const s of servers) if (s instanceof http.Server) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  /** The configuration loadConfig gives for these settings (plum.yaml's runtime keys, here from their env names). */
  function configWith(env: Record<string, string>): PlumConfig {
    return loadConfig({ PLUM_HOME: path.join(dir, "home"), ...env });
  }

  it("is a doctor check", () => {
    expect(ALL_CHECKS).to.include(dockerEngine);
    expect(dockerEngine.categories).to.include("doctor");
  });

  it("reports the test engine's version, API, storage driver and the free space in its data root", async () => {
    const { socketPath } = testDocker();
    const facts = await engineFacts(connectDocker(socketPath), socketPath);
    const found = await dockerEngine.run({ config: configWith({ PLUM_RUNTIME: "docker", PLUM_DOCKER_SOCKET: socketPath }) });
    expect(found).to.be.a("string");
    expect(found).to.contain(`Docker ${facts.version} (API ${facts.apiVersion}) at ${socketPath}`);
    expect(found).to.contain(`storage driver ${facts.storageDriver}`);
    // The test engine's data root is a folder of the run, visible from here.
    expect(found).to.match(new RegExp(`\\d+\\.\\d GiB free in ${facts.dataRoot.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    if (facts.storageDriver !== "overlay2") expect(found).to.contain("warning: storage driver");
    else expect(found).not.to.contain("warning");
  });

  it("is not needed with the process runtime (the default)", async () => {
    expect(await dockerEngine.run({ config: configWith({ PLUM_DOCKER_SOCKET: path.join(dir, "none.sock") }) })).to.equal("not needed: runtime.kind is process");
  });

  it("fails with the fix when no socket is at the configured path", async () => {
    const socketPath = path.join(dir, "absent", "docker.sock");
    const err = await failure(dockerEngine.run({ config: configWith({ PLUM_RUNTIME: "docker", PLUM_DOCKER_SOCKET: socketPath }) }));
    expect(err.message).to.equal(`no Docker engine socket at ${socketPath}`);
    expect(err.hint).to.contain("apt-get install -y docker.io").and.to.contain("runtime.docker.socket");
  });

  it("fails with the fix when nothing listens at the path", async () => {
    const socketPath = path.join(dir, "stale.sock");
    writeFileSync(socketPath, "");
    const err = await failure(checkDockerEngine(socketPath));
    expect(err.message).to.equal(`nothing listens on the Docker engine socket ${socketPath}`);
    expect(err.hint).to.contain("systemctl start docker");
  });

  it("fails with the fix when something accepts connections on the socket and never answers", async () => {
    const socketPath = path.join(dir, "silent.sock");
    const silent = net.createServer((socket) => void sockets.push(socket));
    servers.push(silent);
    await new Promise<void>((resolve) => silent.listen(socketPath, resolve));
    const err = await failure(checkDockerEngine(socketPath, { timeoutMs: 500 }));
    expect(err.message).to.equal(`the Docker engine at ${socketPath} accepts connections but does not answer`);
    expect(err.hint).to.contain("systemctl restart docker");
  });

  it("names every problem of an engine older than 20.10 (API 1.41), and warns about a storage driver other than overlay2", async () => {
    const socketPath = path.join(dir, "old.sock");
    servers.push(
      await engineLike(socketPath, {
        "/v1.41/version": { body: { Version: "19.03.13", ApiVersion: "1.40" } },
        "/v1.41/info": { body: { Driver: "devicemapper", DockerRootDir: path.join(dir, "no-such-root"), CgroupVersion: "1" } },
      }),
    );
    const err = await failure(checkDockerEngine(socketPath));
    expect(err.message).to.equal(`Docker engine at ${socketPath}: Docker 19.03.13 is older than 20.10; the engine speaks API 1.40, 1.41 needed`);
    expect(err.hint).to.equal("upgrade the engine to 20.10 or newer (Debian 12: apt-get install -y docker.io); upgrade the engine to Docker 20.10 or newer");

    const driverOnly = path.join(dir, "devicemapper.sock");
    servers.push(
      await engineLike(driverOnly, {
        "/v1.41/version": { body: { Version: "24.0.7", ApiVersion: "1.43" } },
        "/v1.41/info": { body: { Driver: "devicemapper", DockerRootDir: path.join(dir, "no-such-root"), CgroupVersion: "2" } },
      }),
    );
    const found = await checkDockerEngine(driverOnly);
    expect(found).to.contain("Docker 24.0.7 (API 1.43)");
    expect(found).to.contain("warning: storage driver devicemapper, overlay2 expected");
    expect(found).to.contain(`free space in the data root not checked: ${path.join(dir, "no-such-root")} is not visible from here`);
    expect(found).to.contain(`df -h ${path.join(dir, "no-such-root")}`);
  });

  it("says so when an engine refuses API 1.41 as too new", async () => {
    const socketPath = path.join(dir, "refuses.sock");
    const refusal = { status: 400, body: { message: "client version 1.41 is too new. Maximum supported API version is 1.40" } };
    servers.push(await engineLike(socketPath, { "/v1.41/version": refusal, "/v1.41/info": refusal }));
    const err = await failure(checkDockerEngine(socketPath));
    expect(err.message).to.match(/is older than API 1\.41: .*Maximum supported API version is 1\.40/);
    expect(err.hint).to.contain("Docker 20.10 or newer");
  });

  it("counts a folder as the data root only when it holds an engine's layout", () => {
    const root = path.join(dir, "root");
    mkdirSync(root);
    expect(dataRootSpace(root)).to.deep.equal({ unseen: `${root} is not visible from here (is the agent in a container?)` });
    mkdirSync(path.join(root, "containers"));
    mkdirSync(path.join(root, "image"));
    const space = dataRootSpace(root);
    expect(space).to.have.property("freeBytes").that.is.above(0);
    expect(dataRootSpace("")).to.deep.equal({ unseen: "the engine did not say where its data root is" });
  });
});
