import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { connectDocker, dockerSocketPath, engineFacts } from "../../lib/docker/engine.ts";
import { APP_ROOT } from "../../lib/paths.ts";
import { buildAgentImage, saveAgentImages, type BuiltAgentImage } from "./agent-image.ts";

/**
 * `npm run bundle -- --images`, the agent's part: build plum-appliance:<version> from the bundle just
 * written and `docker save` it next to it, so an air-gapped Docker host loads it with `docker load -i`.
 */
export async function writeAgentImages(
  bundleFile: string,
  version: string,
  opts: { sourceDir?: string; dockerSocket?: string } = {},
): Promise<BuiltAgentImage & { file: string; fileBytes: number }> {
  const sourceDir = opts.sourceDir ?? APP_ROOT;
  const socketPath = dockerSocketPath(opts.dockerSocket);
  const docker = connectDocker(socketPath);
  await engineFacts(docker, socketPath); // no engine: say so with the fix before any work
  const workDir = mkdtempSync(path.join(tmpdir(), "plum-agent-image-"));
  try {
    const built = await buildAgentImage(docker, { bundleFile, version, sourceDir, workDir });
    const file = await saveAgentImages(docker, built.tag, version, path.dirname(bundleFile));
    return { ...built, file, fileBytes: statSync(file).size };
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}
