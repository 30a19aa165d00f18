import path from "node:path";
import type { PlumConfig } from "../../lib/config.ts";
import { connectDocker, dockerSocketPath } from "../../lib/docker/engine.ts";
import type { Logger } from "../../lib/logger.ts";
import type { HomeLayout } from "../../lib/paths.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { systemUser } from "../../lib/system-user.ts";
import { DockerRuntime } from "./docker-runtime.ts";
import { ProcessRuntime } from "./process-runtime.ts";
import type { RuntimeDriver } from "./runtime.ts";

/** The runtime driver plum.yaml's `runtime.kind` names, built with the instances' timeouts and users or the engine's settings. */
export async function runtimeFor(config: PlumConfig, layout: HomeLayout, log: Logger): Promise<RuntimeDriver> {
  const common = {
    runDir: layout.runDir,
    log,
    stopTimeoutMs: config.instances.stopTimeoutSeconds * 1000,
    startTimeoutMs: config.instances.healthTimeoutSeconds * 1000,
    applianceId: layout.home,
  };
  if (config.runtime.kind === "docker") {
    const d = config.runtime.docker;
    const socketPath = dockerSocketPath(d.socket);
    return new DockerRuntime({
      ...common,
      docker: connectDocker(socketPath),
      socketPath,
      network: d.network,
      selfImage: d.selfImage,
      ownReleaseDir: APP_ROOT,
      memoryMb: d.memoryMb,
      cpus: d.cpus,
    });
  }
  return new ProcessRuntime({
    ...common,
    logDir: path.join(layout.logsDir, "instances"),
    runAs: await systemUser(config.instances.user, log, "to run product instances"),
    commandsRunAs: await systemUser(config.instances.commandUser, log, "to run release commands apart from the instances"),
  });
}
