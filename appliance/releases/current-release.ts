import path from "node:path";
import { APP_ROOT } from "../../lib/paths.ts";
import { APP_VERSION } from "../../lib/version.ts";
import type { ReleaseRef } from "../runtimes/runtime.ts";

/** The release the agent itself was installed from: its own tree, run through its own `plumctl`. */
export function currentRelease(): ReleaseRef {
  return { version: APP_VERSION, dir: APP_ROOT, command: [process.execPath, path.join(APP_ROOT, "bin", "plumctl.js")] };
}
