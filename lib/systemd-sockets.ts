/**
 * Sockets handed over by systemd socket activation (sd_listen_fds(3)): systemd opens the listening sockets of
 * plum-proxy.socket and plum-console.socket once and passes them to every start of plum.service as fds 3, 4, …
 * named by LISTEN_FDNAMES. An agent that listens on them instead of binding lets a restart (an agent upgrade)
 * happen without refusing a connection: the kernel queues new ones in the socket's backlog meanwhile.
 */

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** The names the installer gives the sockets (FileDescriptorName=), one per listener of the agent. */
export type ListenerName = "proxy" | "console";

/**
 * The fds systemd passed to this process, by name. Empty when none were passed, or when they were meant for
 * another process (LISTEN_PID names the process they are for: a child that inherited the environment must not
 * take its parent's sockets). Unnamed fds are named "unknown", as sd_listen_fds_with_names(3) does.
 */
export function listenFdsFrom(env: NodeJS.ProcessEnv, pid: number): Map<string, number> {
  const fds = new Map<string, number>();
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== pid) return fds;
  const count = Number(env.LISTEN_FDS);
  if (!Number.isInteger(count) || count <= 0) return fds;
  const names = (env.LISTEN_FDNAMES ?? "").split(":");
  for (let i = 0; i < count; i++) {
    const name = names[i] && names[i] !== "" ? names[i] : "unknown";
    // A name given to two fds (a socket unit with two ListenStream=): the first one listens, as the others would duplicate it.
    if (!fds.has(name)) fds.set(name, LISTEN_FDS_START + i);
  }
  return fds;
}

let taken: Map<string, number> | undefined;

/**
 * The fd systemd passed for `name`, or undefined (npm start, Docker, a unit without its socket): then the
 * listener binds its address as it always did. The LISTEN_* variables are read once and removed from the
 * environment, so that no process this agent starts (PostgreSQL, instances, release commands) sees them.
 */
export function passedListener(name: ListenerName): number | undefined {
  if (!taken) {
    taken = listenFdsFrom(process.env, process.pid);
    delete process.env.LISTEN_PID;
    delete process.env.LISTEN_FDS;
    delete process.env.LISTEN_FDNAMES;
  }
  return taken.get(name);
}

/** Where a listener listens: a socket systemd passed, or an address to bind. */
export type ListenOn = { fd: number } | { port: number; host: string };

export function listenOn(name: ListenerName, port: number, host: string): ListenOn {
  const fd = passedListener(name);
  return fd === undefined ? { port, host } : { fd };
}

/** ListenStream= for an address as plum.yaml gives it ("::" and IPv6 addresses in brackets). */
export function listenStreamOf(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
