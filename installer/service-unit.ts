import path from "node:path";
import type { PlumConfig } from "../lib/config.ts";
import { localFolderOf } from "../backup/repository-location.ts";
import { listenStreamOf, type ListenerName } from "../lib/systemd-sockets.ts";
import { currentLinkOf, installedEnvironment, nodeOf, plumctlOf, type InstallPaths } from "./install-layout.ts";

/**
 * The agent's capabilities, as few as it can do with (the same set as the Docker target's agent container):
 * it runs as root only to hand each part its own unprivileged user — the embedded PostgreSQL runs as
 * "postgres", product instances as instances.user, a release's commands as instances.commandUser — and to
 * own the files those users write. A process that switches from root to one of them keeps none of these.
 *   CAP_SETUID, CAP_SETGID             start PostgreSQL, instances and release commands as their users
 *   CAP_CHOWN, CAP_FOWNER              hand the PostgreSQL data folder and its logs to "postgres"
 *   CAP_DAC_OVERRIDE                   read and back up what those users wrote (pgdata, instance logs)
 *   CAP_KILL                           stop instances and PostgreSQL, which run as other users
 * CAP_NET_BIND_SERVICE only when a listener is on a port below 1024.
 */
export const AGENT_CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"];

/** The backup repositories that are local folders (a path or local:PATH, not sftp:, rest:, s3: …) outside PLUM_HOME: the agent writes there too. */
function localRepositoryFolders(config: PlumConfig, home: string): string[] {
  return [config.backup.primary, config.backup.secondary]
    .map((r) => (r ? localFolderOf(r) : undefined))
    .filter((r): r is string => r !== undefined && path.isAbsolute(r))
    .filter((r) => r !== home && !r.startsWith(home + path.sep));
}

/** The socket units of the agent's two public listeners, with what each listens on. */
export function socketUnits(p: InstallPaths, config: PlumConfig): Array<{ name: ListenerName; unit: string; file: string; text: string }> {
  const listeners: Array<[ListenerName, string, number, string]> = [
    ["proxy", config.http.host, config.http.port, "edge proxy (product traffic)"],
    ["console", config.console.host, config.console.port, "ops console"],
  ];
  return listeners.map(([name, host, port, what]) => {
    const unit = p.socketUnits[name];
    return { name, unit, file: path.join(p.systemdDir, unit), text: socketUnit(p, what, name, listenStreamOf(host, port)) };
  });
}

/**
 * A listening socket of the agent, opened by systemd rather than by the agent: it stays open while plum.service
 * restarts (an agent upgrade), so the kernel queues new connections in its backlog instead of refusing them, and
 * the next agent accepts them. One unit per listener: FileDescriptorName= names every socket of a unit alike.
 */
function socketUnit(p: InstallPaths, what: string, name: ListenerName, listen: string): string {
  return [
    "# Written by plumctl install from /etc/plum/plum.yaml (http.host/http.port, console.host/console.port); plumctl install rewrites it.",
    "[Unit]",
    `Description=Plum appliance: the ${what} listening socket, kept open across agent restarts`,
    "",
    "[Socket]",
    `ListenStream=${listen}`,
    `FileDescriptorName=${name}`,
    `Service=${p.unitName}`,
    "Backlog=4096",
    "NoDelay=yes",
    "",
    "[Install]",
    "WantedBy=sockets.target",
    "",
  ].join("\n");
}

/**
 * plum.service: the agent as a hardened systemd service. `systemctl start` returns once the agent is up and
 * its proxy and console answer (ExecStartPost waits on them, within TimeoutStartSec); a crash or a failed
 * start restarts it (Restart=on-failure). It listens on the sockets of plum-proxy.socket and
 * plum-console.socket, which outlive its restarts.
 *
 * Stopping sends SIGTERM to the agent only, and only the agent is killed at TimeoutStopSec (KillMode=process):
 * on a stop the agent drains the proxy and stops the instances and PostgreSQL itself, in order; on a handover
 * (an agent upgrade asked for the restart) it leaves them running for the next agent to adopt. Whatever a
 * killed agent leaves behind, the next one adopts or stops (its runtime's recover()).
 *
 * ExecStartPre runs the agent guard (agent-guard.sh, outside every release): after an agent upgrade whose new
 * agent did not come up, it switches /opt/plum/current back before the next start.
 */
export function serviceUnit(p: InstallPaths, config: PlumConfig): string {
  const current = currentLinkOf(p);
  const lowPort = [config.http.port, config.console.port].some((port) => port > 0 && port < 1024);
  const capabilities = [...AGENT_CAPABILITIES, ...(lowPort ? ["CAP_NET_BIND_SERVICE"] : [])].join(" ");
  // PLUM_SERVICE: the agent's output is the journal (no one-time password printed there).
  const env = Object.entries({ ...installedEnvironment(p), PLUM_SERVICE: "1" }).map(([k, v]) => `Environment=${k}=${v}`);
  // A repository folder that is not mounted yet must not stop the service from starting: "-" makes it optional.
  const sockets = Object.values(p.socketUnits).join(" ");
  const writable = [p.home, p.logDir, p.optDir, ...localRepositoryFolders(config, p.home).map((f) => `-${f}`)];
  return [
    "# Written by plumctl install; plumctl install rewrites it (edit /etc/plum/plum.yaml, or add a drop-in with systemctl edit plum).",
    "[Unit]",
    "Description=Plum appliance (agent: edge proxy, ops console, backups, upgrades)",
    "Wants=network-online.target",
    `Requires=${sockets}`,
    `After=network-online.target ${sockets}`,
    "StartLimitIntervalSec=600",
    "StartLimitBurst=5",
    "",
    "[Service]",
    "Type=exec",
    "User=root",
    "Group=root",
    ...env,
    `WorkingDirectory=${p.home}`,
    `Sockets=${sockets}`,
    // "-": a guard that cannot run (removed by hand) must not keep the agent from starting.
    `ExecStartPre=-/bin/sh ${p.agentGuard} start`,
    `ExecStart=${nodeOf(current)} ${plumctlOf(current)} agent`,
    `ExecStartPost=${nodeOf(current)} ${plumctlOf(current)} wait-ready --timeout 600`,
    "TimeoutStartSec=660",
    "KillMode=process",
    "TimeoutStopSec=150",
    "Restart=on-failure",
    "RestartSec=5",
    "UMask=0027",
    "NoNewPrivileges=yes",
    `CapabilityBoundingSet=${capabilities}`,
    "AmbientCapabilities=",
    "ProtectSystem=strict",
    `ReadWritePaths=${writable.join(" ")}`,
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes",
    "LockPersonality=yes",
    "SystemCallArchitectures=native",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "LimitNOFILE=65536",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** ExecStart= of a unit, split into its words (the unit above never quotes: its paths have no spaces). */
export function execStartOf(unit: string): string[] {
  const line = unit.split("\n").find((l) => l.startsWith("ExecStart="));
  if (!line) throw new Error("the unit has no ExecStart=");
  return line.slice("ExecStart=".length).trim().split(/\s+/);
}

/** Environment= of a unit, as an object. */
export function environmentOf(unit: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const l of unit.split("\n").filter((x) => x.startsWith("Environment="))) {
    const [k, ...v] = l.slice("Environment=".length).split("=");
    env[k] = v.join("=");
  }
  return env;
}
