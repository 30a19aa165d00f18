import { expect } from "chai";
import type Docker from "dockerode";
import { connectDocker } from "../../lib/docker/engine.ts";
import { DockerRuntime, LABEL } from "../../appliance/runtimes/docker-runtime.ts";
import { currentRelease } from "../../appliance/releases/current-release.ts";
import { runReleaseMigrate } from "../../appliance/upgrade/release-commands-runner.ts";
import { createLogger } from "../../lib/logger.ts";
import { homeLayout } from "../../lib/paths.ts";
import { connectionUrl } from "../../lib/db/database.ts";
import { waitFor } from "../../lib/wait.ts";
import type { Agent } from "../../appliance/agent.ts";
import { testDocker } from "../support/docker-engine.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";

/**
 * The docker runtime for real: an agent whose production instance is a container on the test run's engine,
 * serving through the edge proxy, hardened, with no secret where `docker ps` or `docker inspect` show it.
 */
describe("docker runtime: production in a hardened container", function () {
  this.timeout(240_000);
  let running: Awaited<ReturnType<typeof startInProcessAgent>>;
  let agent: Agent;
  let docker: Docker;

  before(async () => {
    const engine = testDocker();
    docker = connectDocker(engine.socketPath);
    running = await startInProcessAgent((config) => {
      config.runtime.kind = "docker";
      config.runtime.docker.socket = engine.socketPath;
      config.runtime.docker.network = engine.network;
      config.runtime.docker.memoryMb = 384;
      config.runtime.docker.cpus = 1.5;
    });
    agent = running.agent;
  });
  after(async () => {
    await running?.stop();
  });

  it("serves production from a container through the edge proxy", async () => {
    const [instance] = agent.runtime.list();
    expect(agent.runtime.kind).to.equal("docker");
    expect(instance.id).to.equal(`production@${instance.version}`);
    const res = await fetch(new URL("/version", agent.urls.proxy));
    expect(res.status).to.equal(200);
    const containers = await docker.listContainers({ filters: JSON.stringify({ label: [`${LABEL.instance}=${instance.id}`] }) });
    expect(containers).to.have.length(1);
    const ip = Object.values(containers[0].NetworkSettings.Networks)[0].IPAddress;
    expect(instance.url).to.equal(`http://${ip}:8080`);
  });

  async function productionContainer(): Promise<Docker.ContainerInspectInfo> {
    const instance = agent.runtime.list().find((i) => i.slot === "production")!;
    const [c] = await docker.listContainers({ filters: JSON.stringify({ label: [`${LABEL.instance}=${instance.id}`] }) });
    return docker.getContainer(c.Id).inspect();
  }

  it("runs the instance hardened: non-root, read-only root, no capabilities, no-new-privileges, limits, a healthcheck", async () => {
    const info = await productionContainer();
    expect(info.Config.User).to.equal("10001:10001");
    expect(info.HostConfig.ReadonlyRootfs).to.equal(true);
    expect(info.HostConfig.CapDrop).to.deep.equal(["ALL"]);
    expect(info.HostConfig.CapAdd ?? []).to.deep.equal([]);
    expect(info.HostConfig.Privileged).to.equal(false);
    expect(info.HostConfig.SecurityOpt).to.deep.equal(["no-new-privileges"]);
    expect(info.HostConfig.Memory).to.equal(384 * 1024 * 1024);
    expect(info.HostConfig.MemorySwap).to.equal(384 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).to.equal(1.5e9);
    expect(info.HostConfig.PidsLimit).to.equal(512);
    expect(Object.keys(info.HostConfig.Tmpfs ?? {})).to.deep.equal(["/tmp"]);
    expect(info.HostConfig.NetworkMode).to.equal(testDocker().network);
    expect(info.Config.Healthcheck?.Test?.slice(0, 2)).to.deep.equal(["CMD", "/usr/local/bin/node"]);
    // The agent's own folder is mounted read-only (no image of its own), nothing else of the host.
    for (const bind of info.HostConfig.Binds ?? []) expect(bind).to.match(/:ro$/);
    // The process inside really is uid 10001 and cannot write its root filesystem.
    const exec = await docker.getContainer(info.Id).exec({
      Cmd: [
        "/usr/local/bin/node",
        "-e",
        "const fs=require('fs');let w='refused';try{fs.writeFileSync('/app-x','x');w='written'}catch{};console.log(process.getuid(), w)",
      ],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({});
    const chunks: Buffer[] = [];
    await new Promise((resolve) => {
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", resolve);
    });
    expect(Buffer.concat(chunks).toString("utf8")).to.include("10001 refused");
    await waitFor("the container's healthcheck to pass", async () => ((await productionContainer()).State.Health?.Status === "healthy" ? true : undefined), {
      timeoutMs: 60_000,
      firstDelayMs: 500,
    });
  });

  it("keeps every secret out of the command line, the labels and the `docker ps` listing", async () => {
    const info = await productionContainer();
    const env = Object.fromEntries((info.Config.Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    const dbUrl = new URL(env.PLUM_PRODUCT_DATABASE_URL);
    const secrets = [decodeURIComponent(dbUrl.password), env.PLUM_PRODUCT_SESSION_KEY];
    expect(secrets.every((v) => v && v.length >= 16)).to.equal(true);
    // The database is reached on the network's gateway, not the host's loopback.
    expect(dbUrl.hostname).to.equal(testDocker().gateway);
    const [listed] = await docker.listContainers({ filters: JSON.stringify({ id: [info.Id] }) });
    const shown = JSON.stringify({
      cmd: info.Config.Cmd,
      entrypoint: info.Config.Entrypoint,
      labels: info.Config.Labels,
      name: info.Name,
      ps: [listed.Command, listed.Labels, listed.Names, listed.Image],
    });
    for (const secret of secrets) expect(shown).not.to.include(secret);
  });

  it("runs a release command as a one-off container that reaches the database, and removes it", async () => {
    const server = running.dbs.server;
    const result = await runReleaseMigrate(agent.runtime, currentRelease(), connectionUrl(server, running.dbs.product), { timeoutMs: 120_000 });
    expect(result.ran).to.deep.equal([]);
    const left = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.role}=command`] }) });
    expect(left.filter((c) => c.Labels[LABEL.version] === currentRelease().version && c.Names.some((n) => n.includes("-migrate-")))).to.have.length(0);
  });

  it("restarts a production container that dies unasked, and production answers again", async () => {
    const before = await productionContainer();
    await docker.getContainer(before.Id).kill();
    const after = await waitFor(
      "a new production container",
      async () => {
        const i = agent.runtime.list().find((x) => x.slot === "production");
        if (!i) return undefined;
        const info = await productionContainer().catch(() => undefined);
        return info && info.Id !== before.Id && info.State.Running ? info : undefined;
      },
      { timeoutMs: 90_000, firstDelayMs: 200 },
    );
    expect(after.Id).not.to.equal(before.Id);
    await waitFor("production to answer", async () => ((await fetch(new URL("/version", agent.urls.proxy))).ok ? true : undefined), { timeoutMs: 60_000 });
  });

  it("a restarted agent's runtime adopts the running container instead of restarting it", async () => {
    const before = await productionContainer();
    const layout = homeLayout(agent.config.home);
    const second = new DockerRuntime({
      docker,
      socketPath: testDocker().socketPath,
      network: testDocker().network,
      ownReleaseDir: currentRelease().dir,
      memoryMb: 384,
      cpus: 1.5,
      runDir: layout.runDir,
      log: createLogger("test-runtime", { level: "silent" }),
      stopTimeoutMs: 10_000,
      startTimeoutMs: 60_000,
      applianceId: layout.home,
    });
    try {
      const lines = await second.recover();
      expect(lines.join("\n")).to.match(/adopted running container .*production@/);
      const adopted = second.list().find((i) => i.slot === "production")!;
      const now = await docker.getContainer(before.Id).inspect();
      expect(now.State.StartedAt).to.equal(before.State.StartedAt);
      expect(adopted.url).to.equal(agent.runtime.list().find((i) => i.slot === "production")!.url);
    } finally {
      await second.dispose();
    }
  });
});
