import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { DEFAULT_CONFIG_YAML } from "./config.ts";
import { homeLayout, resolveHome, type HomeLayout } from "./paths.ts";
import { ensureSecrets, type Secrets } from "./secrets.ts";

/** Create PLUM_HOME on first use: folders, a commented plum.yaml, and the secrets (mode 0600). */
export function prepareHome(env: NodeJS.ProcessEnv = process.env): { layout: HomeLayout; secrets: Secrets; created: boolean } {
  const layout = homeLayout(resolveHome(env), env);
  const created = !existsSync(layout.configFile);
  mkdirSync(layout.home, { recursive: true, mode: 0o750 });
  // The embedded PostgreSQL runs as its own OS user and must be able to enter PLUM_HOME to reach pgdata/.
  chmodSync(layout.home, 0o751);
  for (const dir of [layout.logsDir, layout.runDir, layout.filesDir, layout.releasesDir]) mkdirSync(dir, { recursive: true, mode: 0o750 });
  // Product instances run as their own system user (as root): they read and traverse the unpacked releases, and
  // nothing else of PLUM_HOME (secrets/ is 0700, plum.yaml 0640, logs/, run/, files/ 0750, all the agent's).
  chmodSync(layout.releasesDir, 0o755);
  if (created) writeFileSync(layout.configFile, DEFAULT_CONFIG_YAML, { mode: 0o640, flag: "wx" });
  return { layout, secrets: ensureSecrets(layout.secretsDir), created };
}
