import path from "node:path";

/**
 * Where an installed appliance lives on its host (the FHS places a Debian admin looks first):
 *   /opt/plum/<version>/{node,app}   each installed release: its Node runtime and the compiled appliance
 *   /opt/plum/current                → the release the service runs
 *   /etc/plum/plum.yaml              the configuration
 *   /var/lib/plum                    PLUM_HOME: secrets (0700), the embedded PostgreSQL, releases, files, backups
 *   /var/log/plum                    the agent's, PostgreSQL's and the instances' logs
 */
export const INSTALL_PATHS = {
  optDir: "/opt/plum",
  etcDir: "/etc/plum",
  home: "/var/lib/plum",
  logDir: "/var/log/plum",
  unitName: "plum.service",
  unitFile: "/etc/systemd/system/plum.service",
  wantsLink: "/etc/systemd/system/multi-user.target.wants/plum.service",
  /** The listening sockets systemd keeps open across agent restarts (service-unit.ts), by their fd names. */
  socketUnits: { proxy: "plum-proxy.socket", console: "plum-console.socket" },
  systemdDir: "/etc/systemd/system",
  /** Run by the unit before every agent start, from outside any release: it rolls back a failed agent upgrade. */
  agentGuard: "/opt/plum/agent-guard.sh",
  plumctl: "/usr/local/bin/plumctl",
} as const;

type Widen<T> = { readonly [K in keyof T]: T[K] extends string ? string : Widen<T[K]> };
/** The layout as its users take it: tests lay it out under a temp folder. */
export type InstallPaths = Widen<typeof INSTALL_PATHS>;

export const configFileOf = (p: InstallPaths) => path.join(p.etcDir, "plum.yaml");
export const currentLinkOf = (p: InstallPaths) => path.join(p.optDir, "current");
/** Where `systemctl enable` links a socket unit (its WantedBy=sockets.target). */
export const socketWantsLink = (p: InstallPaths, unit: string) => path.join(p.systemdDir, "sockets.target.wants", unit);
export const releaseDirOf = (p: InstallPaths, version: string) => path.join(p.optDir, version);
/** The Node runtime and the appliance of a release dir, or of `current`. */
export const nodeOf = (releaseDir: string) => path.join(releaseDir, "node", "bin", "node");
export const plumctlOf = (releaseDir: string) => path.join(releaseDir, "app", "bin", "plumctl.js");

/** The environment every installed process of the appliance runs with: the unit's and the installed plumctl's. */
export function installedEnvironment(p: InstallPaths): Record<string, string> {
  return { PLUM_HOME: p.home, PLUM_CONFIG_FILE: configFileOf(p), PLUM_LOG_DIR: p.logDir, NODE_ENV: "production" };
}

/** /usr/local/bin/plumctl: the current release's plumctl with the installed environment. */
export function plumctlWrapper(p: InstallPaths): string {
  const current = currentLinkOf(p);
  const env = Object.entries(installedEnvironment(p))
    .map(([k, v]) => `export ${k}='${v}'`)
    .join("\n");
  return `#!/bin/sh
# Written by plumctl install: the installed appliance's plumctl (the release ${current} points at).
${env}
exec '${nodeOf(current)}' '${plumctlOf(current)}' "$@"
`;
}
