import path from "node:path";
import { fileURLToPath } from "node:url";

/** The root of the installed package (where package.json is), whether run from source or from dist/. */
export const APP_ROOT = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const up = path.resolve(here, "..");
  return path.basename(up) === "dist" ? path.resolve(up, "..") : up;
})();

/** The compiled or source root holding bin/, cli/, product/, migrations/ (dist/ in a release build). */
export const CODE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.PLUM_HOME && env.PLUM_HOME !== "" ? env.PLUM_HOME : ".plum");
}

/**
 * Where everything of one appliance lives. A checkout keeps it all under PLUM_HOME; an installed host keeps
 * plum.yaml in /etc/plum and the logs in /var/log/plum, named by PLUM_CONFIG_FILE and PLUM_LOG_DIR (the
 * service unit and the installed plumctl set both).
 */
export function homeLayout(home: string, env: NodeJS.ProcessEnv = process.env) {
  return {
    home,
    configFile: env.PLUM_CONFIG_FILE ? path.resolve(env.PLUM_CONFIG_FILE) : path.join(home, "plum.yaml"),
    secretsDir: path.join(home, "secrets"),
    pgData: path.join(home, "pgdata"),
    logsDir: env.PLUM_LOG_DIR ? path.resolve(env.PLUM_LOG_DIR) : path.join(home, "logs"),
    runDir: path.join(home, "run"),
    filesDir: path.join(home, "files"),
    releasesDir: path.join(home, "releases"),
    /** Signed checkpoints of the hash chains (lib/chain-anchors.ts): written by the agent's user only, readable by all. */
    anchorFile: path.join(home, "anchors", "chain-anchors.jsonl"),
  };
}
export type HomeLayout = ReturnType<typeof homeLayout>;
