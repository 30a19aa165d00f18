import { expect } from "chai";
import { randomBytes, randomInt } from "node:crypto";
import { rmSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import type { Express } from "express";
import { agentImageTag, buildAgentImage, saveAgentImages } from "../../appliance/releases/agent-image.ts";
import { loadImage } from "../../appliance/releases/container-image.ts";
import { runChild, type ChildExit } from "../../lib/child-process.ts";
import { connectDocker } from "../../lib/docker/engine.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { waitFor } from "../../lib/wait.ts";
import { TEST_PASSWORD } from "../support/console-users.ts";
import { testDocker } from "../support/docker-engine.ts";
import { freePort } from "../support/ports.ts";
import { runTempDir } from "../support/run-dir.ts";
import { buildTestBundle, testVendorKeys } from "../support/test-bundles.ts";
import { WebClient } from "../support/web-client.ts";

const COMPOSE_FILE = path.join(APP_ROOT, "docker-compose.onprem.yml");

/**
 * docker-compose.onprem.yml on the test run's engine, with Debian's docker-compose 1.29: the agent image is
 * built from this checkout, saved and loaded as an air-gapped host would, brought up, taken down and up
 * again with its volume, and removed.
 */
describe("docker-compose.onprem.yml: the appliance on a Docker host", function () {
  this.timeout(900_000);
  const version = `0.1.${randomInt(1000, 60_000)}`;
  const tag = agentImageTag(version);
  const project = `plumcompose${randomBytes(3).toString("hex")}`;
  const network = `plum-instances-${project}`;
  let docker: Docker;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let proxyUrl: string;
  let consoleUrl: string;
  let firstPassword: string;
  let backupSet: string;

  function compose(args: string[], what: string, timeoutMs = 300_000): Promise<ChildExit> {
    return runChild(["docker-compose", "--no-ansi", "-p", project, "-f", COMPOSE_FILE, ...args], { env, timeoutMs, what: `docker-compose ${what}` });
  }
  /** `plumctl …` inside the agent's container. */
  function plumctl(args: string[], timeoutMs = 120_000): Promise<ChildExit> {
    return compose(["exec", "-T", "agent", "plumctl", ...args], `exec plumctl ${args.join(" ")}`, timeoutMs);
  }
  async function agentContainer(): Promise<Docker.ContainerInspectInfo> {
    const [c] = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`com.docker.compose.project=${project}`] }) });
    expect(c, "the project's agent container").to.not.equal(undefined);
    return docker.getContainer(c.Id).inspect();
  }
  /** /healthz through the published port answering 200. */
  async function healthyThroughPort(): Promise<void> {
    await waitFor(
      `${proxyUrl}/healthz to answer 200 through the published port`,
      async () => {
        const res = await fetch(`${proxyUrl}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
        return res?.status === 200 || undefined;
      },
      { timeoutMs: 300_000, maxDelayMs: 500 },
    ).catch(async (err) => {
      const logs = await compose(["logs", "--tail", "60", "agent"], "logs").catch(() => undefined);
      throw new Error(`${(err as Error).message}\n${logs?.stdout ?? ""}`);
    });
  }
  async function upDetached(what: string): Promise<void> {
    await compose(["up", "-d"], what);
  }
  function consoleClient(): WebClient {
    return new WebClient(consoleUrl as unknown as Express); // supertest takes a base URL as well as an app
  }

  before(async () => {
    const engine = testDocker();
    docker = connectDocker(engine.socketPath);
    work = runTempDir("plum-compose-");
    const [httpPort, consolePort] = [await freePort(), await freePort()];
    proxyUrl = `http://127.0.0.1:${httpPort}`;
    consoleUrl = `http://127.0.0.1:${consolePort}`;
    // Nothing of the test run's own PLUM_* (its database, its home) reaches the compose file's ${…}.
    env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PLUM_") && !k.startsWith("DOCKER_") && !k.startsWith("COMPOSE_")));
    Object.assign(env, {
      DOCKER_HOST: `unix://${engine.socketPath}`,
      PLUM_VERSION: version,
      PLUM_HOST_DOCKER_SOCKET: engine.socketPath,
      PLUM_DOCKER_NETWORK: network,
      PLUM_HTTP_PUBLISH: `127.0.0.1:${httpPort}`,
      PLUM_CONSOLE_PUBLISH_PORT: String(consolePort),
      PLUM_CONSOLE_COOKIE_SECURE: "false",
    });

    const bundle = await buildTestBundle({ version, key: testVendorKeys().privateKey, outDir: work });
    await buildAgentImage(docker, { bundleFile: bundle, version, sourceDir: APP_ROOT, workDir: work });
    const file = await saveAgentImages(docker, tag, version, work);
    // As on an air-gapped host: the engine has only what `docker load` gives it.
    await docker.getImage(tag).remove();
    expect(await loadImage(docker, file)).to.include(tag);
  });

  after(async () => {
    if (env) await compose(["down", "-v", "--timeout", "60"], "down -v").catch(() => undefined);
    await docker
      ?.getImage(tag)
      .remove({ force: true })
      .catch(() => undefined);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("the compose file is valid for Debian's docker-compose 1.29", async () => {
    const config = await compose(["config"], "config");
    expect(config.stdout).to.include(`image: ${tag}`);
    expect(config.stdout).to.include(`name: ${network}`);
    const unset = await runChild(["docker-compose", "-f", COMPOSE_FILE, "config"], {
      env: { ...env, PLUM_VERSION: "" },
      timeoutMs: 60_000,
      okCodes: [1],
    });
    expect(unset.stderr, "without PLUM_VERSION it says what to set").to.include("set PLUM_VERSION");
  });

  it("`up -d` from the loaded image brings the appliance up: /healthz 200 through the published port, the engine's healthcheck healthy", async () => {
    await upDetached("up -d");
    await healthyThroughPort();
    await waitFor(
      "the agent container's healthcheck to say healthy",
      async () => ((await agentContainer()).State.Health?.Status === "healthy" ? true : undefined),
      { timeoutMs: 120_000, maxDelayMs: 1000 },
    );

    const agent = await agentContainer();
    expect(agent.Config.Image).to.equal(tag);
    expect(agent.HostConfig.PortBindings?.["8800/tcp"]?.[0]?.HostIp, "the console on the host's loopback only").to.equal("127.0.0.1");
    expect(Object.keys(agent.NetworkSettings.Networks)).to.include(network);
    expect(agent.Mounts.find((m) => m.Destination === "/var/lib/plum")?.Name).to.equal(`${project}_plum-data`);
    expect(agent.HostConfig.Init).to.equal(true);

    // The docker runtime: production runs in a container beside the agent's, from the agent image, unprivileged.
    const [instance] = await docker.listContainers({
      filters: JSON.stringify({ label: ["io.plum.role=instance", "io.plum.slot=production"], network: [network] }),
    });
    expect(instance, "a production instance container on the project's network").to.not.equal(undefined);
    const instanceInfo = await docker.getContainer(instance.Id).inspect();
    expect(instanceInfo.Config.Image).to.equal(tag);
    expect(instanceInfo.Config.User).to.equal("10001:10001");
    expect(instanceInfo.HostConfig.ReadonlyRootfs).to.equal(true);

    const login = await fetch(`${consoleUrl}/login`);
    expect(login.status, "the console through its loopback port").to.equal(200);

    const doctor = await plumctl(["doctor"]);
    expect(doctor.stdout).to.match(/ok\s+restic is installed/);
    expect(doctor.stdout).to.match(/ok\s+pg_dump and pg_restore 15 or newer/);

    const logs = await compose(["logs", "--no-color", "agent"], "logs");
    firstPassword = /one-time password: (\S+)/.exec(logs.stdout)?.[1] ?? "";
    expect(firstPassword, "the first sign-in's one-time password is in the agent's log").to.not.equal("");
  });

  it("`down` then `up` keeps the data: the admin's own password and a backup set made inside the container", async () => {
    const admin = consoleClient();
    expect((await admin.signIn("admin", firstPassword)).headers.location).to.equal("/account/password");
    expect((await admin.changePassword(firstPassword, TEST_PASSWORD)).status).to.equal(303);
    const backup = await plumctl(["backup", "run"], 300_000);
    expect(backup.stdout, "pg_dump and restic inside the container").to.include("manual backup set: succeeded");
    const listed = (await plumctl(["backup", "list"])).stdout;
    backupSet = /^(\S+)\s+manual\s+succeeded/m.exec(listed)?.[1] ?? "";
    expect(backupSet, listed).to.not.equal("");

    await compose(["stop", "--timeout", "90"], "stop");
    const stopped = await agentContainer();
    expect(stopped.State.ExitCode, "the agent drains and exits 0 on the engine's SIGTERM (through docker-init)").to.equal(0);
    await compose(["down", "--timeout", "90"], "down");
    expect(await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`com.docker.compose.project=${project}`] }) })).to.have.length(0);
    expect((await docker.getVolume(`${project}_plum-data`).inspect()).Name, "down keeps the named volume").to.equal(`${project}_plum-data`);

    await upDetached("up -d (again)");
    await healthyThroughPort();

    const logs = await compose(["logs", "--no-color", "agent"], "logs");
    expect(logs.stdout, "no first start on the kept volume").to.not.include("one-time password:");
    expect((await consoleClient().signIn("admin", firstPassword)).status, "the one-time password is spent").to.equal(401);
    const signedIn = await consoleClient().signIn("admin", TEST_PASSWORD);
    expect(signedIn.status).to.equal(303);
    expect(signedIn.headers.location, "the password chosen before `down` holds").to.not.equal("/account/password");
    expect((await plumctl(["backup", "list"])).stdout).to.match(new RegExp(`${backupSet}\\s+manual\\s+succeeded`));
  });

  it("`down -v` removes the container, the network and the volume", async () => {
    await compose(["down", "-v", "--timeout", "90"], "down -v");
    expect(await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`com.docker.compose.project=${project}`] }) })).to.have.length(0);
    const volumes = (await docker.listVolumes()).Volumes ?? [];
    expect(volumes.map((v) => v.Name)).to.not.include(`${project}_plum-data`);
    const networks = await docker.listNetworks();
    expect(networks.map((n) => n.Name)).to.not.include(network);
  });
});
