import { randomBytes, createHash } from "node:crypto";
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { runChild, startChild, type ChildExit, type RunningChild } from "../../lib/child-process.ts";
import { PlumError } from "../../lib/errors.ts";
import { isAlive } from "../../lib/processes.ts";
import { waitFor, withDeadline } from "../../lib/wait.ts";

/**
 * A booted Debian with systemd as PID 1, for testing service units on hosts where systemd is not PID 1
 * (containers, CI machines). It is `systemd-nspawn --boot` of a debootstrapped bookworm: measured on a
 * 2-core machine, the rootfs builds once in ≈ 36 s (255 MB) and boots to `running` in < 1 s.
 *
 * Why nspawn and not Docker: Docker's `--privileged` is refused where the host lacks a capability in its
 * bounding set ("unable to apply caps"), and without it (SYS_ADMIN, private cgroup namespace) systemd boots
 * but `PrivateUsers=` fails ("Failed to set up user namespacing") and `PrivateNetwork=` cannot bring up its
 * loopback; with `--cgroupns=host` and the host's /sys/fs/cgroup bound in, the container's systemd remounts
 * the host's cgroup tmpfs read-only. nspawn runs every hardening directive a unit of ours uses.
 */
export const SYSTEMD_SUITE = "bookworm";
// openssl: what a Debian server has and the install bundle's install.sh checks signatures with.
const PACKAGES = ["systemd", "systemd-sysv", "dbus", "procps", "iproute2", "openssl"];
const DEFAULT_MIRROR = "http://deb.debian.org/debian";
const BUILD_TIMEOUT_MS = 15 * 60_000;
const BOOT_TIMEOUT_MS = 60_000;
/** Halting a booted machine took ≈ 1.8 s; past this its nspawn is killed. */
const HALT_TIMEOUT_MS = 30_000;
/** The longest a machine may live: a forgotten one is halted at this deadline. */
const LIFETIME_MS = 60 * 60_000;
const CONSOLE_LINES_KEPT = 200;
const PATH_INSIDE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface ExecOptions {
  timeoutMs?: number;
  okCodes?: number[];
  stdin?: string | Buffer;
  /** Added to the small environment the command gets (PATH and LANG): the test's own never leaks in. */
  env?: Record<string, string>;
  what?: string;
}

export interface SystemdHost {
  /** The machine's name (its hostname inside is the host's: nspawn without --hostname keeps it). */
  name: string;
  /** The pid of the machine's systemd (PID 1 inside), as the host sees it. */
  leaderPid: number;
  /** This node, bound read-only into the machine at the same path, so units can run the test's scripts. */
  nodePath: string;
  /** The cgroups made for this machine's nspawn (removed by stop). */
  cgroupDirs: string[];
  /** Milliseconds from spawning nspawn to `systemctl is-system-running` answering. */
  bootMs: number;
  /** `running`, or `degraded` when a unit of the image failed (the boot still counts). */
  state: string;
  /** A command inside the machine: its namespaces, its root, its PATH. */
  exec(argv: string[], opts?: ExecOptions): Promise<ChildExit>;
  /** A host program in the machine's network namespace only (it has a loopback of its own and no other link). */
  execInNetwork(argv: string[], opts?: ExecOptions): Promise<ChildExit>;
  /** Copy a host file or folder to a path inside (written through /proc/PID/root, so it lands in the machine's overlay). */
  copyIn(hostPath: string, containerPath: string): void;
  writeFile(containerPath: string, content: string, mode?: number): void;
  /** The end of the machine's console, for a failing test's message. */
  consoleTail(): string;
  /** Halt the machine, and remove what its boot left on the host (cgroups). Safe to call twice. */
  stop(): Promise<void>;
}

/** Where the rootfs cache lives across test runs unless a caller says otherwise. */
export function defaultSystemdCacheDir(): string {
  return process.env.PLUM_TEST_CACHE_DIR ?? path.join(tmpdir(), "plum-test-cache");
}

/** The Debian mirror apt uses on this host (deb822 .sources or one-line .list entries), else deb.debian.org. */
export function aptDebianMirror(suite = SYSTEMD_SUITE): string {
  const files = ["/etc/apt/sources.list"];
  const dir = "/etc/apt/sources.list.d";
  if (existsSync(dir)) files.push(...readdirSync(dir).map((f) => path.join(dir, f)));
  for (const file of files.filter((f) => existsSync(f))) {
    const text = readFileSync(file, "utf8");
    if (file.endsWith(".sources")) {
      for (const block of text.split(/\n\s*\n/)) {
        const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, "mi").exec(block)?.[1].trim().split(/\s+/) ?? [];
        if (field("Types").includes("deb") && field("Suites").includes(suite) && field("URIs")[0]) return field("URIs")[0];
      }
    } else {
      const line = new RegExp(`^deb\\s+(?:\\[[^\\]]*\\]\\s+)?(\\S+)\\s+${suite}\\s`, "m").exec(text);
      if (line) return line[1];
    }
  }
  return DEFAULT_MIRROR;
}

/**
 * The cached rootfs, built on first use: debootstrap into a partial folder, then one rename, so a run that
 * is killed half-way never leaves a rootfs that looks complete, and two builders racing keep one.
 */
export async function systemdRootfs(cacheDir: string): Promise<string> {
  const key = createHash("sha256")
    .update([SYSTEMD_SUITE, ...PACKAGES].join(" "))
    .digest("hex")
    .slice(0, 12);
  const rootfs = path.join(cacheDir, `systemd-rootfs-${SYSTEMD_SUITE}-${key}`);
  if (existsSync(rootfs)) return rootfs;
  mkdirSync(cacheDir, { recursive: true });
  // One builder at a time (the slow group's files boot machines in parallel): the others wait for its rename.
  // A lock older than a build can take is a killed builder's.
  const lock = `${rootfs}.lock`;
  const held = await waitFor(
    "the systemd test rootfs another test file is building",
    async () => {
      if (existsSync(rootfs)) return "built" as const;
      try {
        mkdirSync(lock);
        return "ours" as const;
      } catch {
        try {
          if (Date.now() - statSync(lock).mtimeMs > BUILD_TIMEOUT_MS) rmSync(lock, { recursive: true, force: true });
        } catch {
          // removed meanwhile: the next round takes it
        }
        return undefined;
      }
    },
    { timeoutMs: BUILD_TIMEOUT_MS + 60_000, firstDelayMs: 500, maxDelayMs: 2000 },
  );
  if (held === "built") return rootfs;
  try {
    return await buildRootfs(rootfs);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

async function buildRootfs(rootfs: string): Promise<string> {
  const partial = `${rootfs}.partial-${randomBytes(4).toString("hex")}`;
  try {
    await runChild(["debootstrap", "--variant=minbase", `--include=${PACKAGES.join(",")}`, SYSTEMD_SUITE, partial, aptDebianMirror()], {
      timeoutMs: BUILD_TIMEOUT_MS,
      what: "debootstrap (the systemd test rootfs)",
      missingHint: "apt-get install debootstrap",
    });
    renameSync(partial, rootfs);
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    if (existsSync(rootfs)) return rootfs; // another worker finished first
    throw err;
  }
  return rootfs;
}

/** The cgroup2 mount and the v1 name=systemd mount (hybrid hosts), with this process's place in each. */
function systemdCgroups(): { mount: string; own: string }[] {
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").trim().split("\n");
  const mine = readFileSync("/proc/self/cgroup", "utf8").trim().split("\n");
  const found: { mount: string; own: string }[] = [];
  for (const line of mounts) {
    const [pre, post] = line.split(" - ");
    const mountPoint = pre.split(" ")[4];
    const [fstype, , superOptions] = post.split(" ");
    const entry =
      fstype === "cgroup2"
        ? mine.find((l) => l.startsWith("0::"))
        : fstype === "cgroup" && superOptions.split(",").includes("name=systemd")
          ? mine.find((l) => l.includes(":name=systemd:"))
          : undefined;
    if (entry) found.push({ mount: mountPoint, own: entry.slice(entry.indexOf(":", entry.indexOf(":") + 1) + 1) });
  }
  return found;
}

function moveSelfTo(dirs: string[]): void {
  for (const dir of dirs) writeFileSync(path.join(dir, "cgroup.procs"), String(process.pid));
}

/** Every process left in a cgroup tree (killed machines can leave orphans), then the tree, bottom-up. */
function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  const dirs: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    dirs.push(d);
  };
  walk(dir);
  for (const d of dirs) {
    for (const pid of readFileSync(path.join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch {
      // a killed process not yet reaped holds it a moment longer; the caller retries
    }
  }
}

/** The booted systemd: the child of nspawn that has exec'd init (nspawn's transient outer child comes first). */
function leaderOf(nspawnPid: number): number | undefined {
  const children = readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
  for (const pid of children) {
    const comm = (() => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {
        return "";
      }
    })();
    if (comm === "systemd") return Number(pid);
  }
  return undefined;
}

/**
 * Boot a machine from the cached rootfs (built first when missing). Each boot gets its own writable layer
 * (`--volatile=overlay`: a tmpfs over the read-only cache, inside the machine's mount namespace, so nothing
 * it writes reaches the cache or outlives it) and its own network namespace with only a loopback.
 */
export async function bootSystemdHost(opts: { cacheDir: string; bindReadOnly?: string[]; bootTimeoutMs?: number }): Promise<SystemdHost> {
  if (process.getuid?.() !== 0) throw new PlumError("booting a systemd machine needs root (systemd-nspawn)", { hint: "run the slow tests as root" });
  const rootfs = await systemdRootfs(opts.cacheDir);
  const name = `plum-${randomBytes(4).toString("hex")}`;
  const nodePath = process.execPath;
  const systemdIsPid1 = existsSync("/run/systemd/system");
  // Without systemd as PID 1 there is no bus to register the machine or allocate its scope: nspawn then
  // splits the cgroup it runs in into "supervisor" and "payload" and leaves them behind, and two machines
  // started from one cgroup would share one "payload". So each nspawn starts in a cgroup of its own.
  const cgroups = systemdIsPid1 ? [] : systemdCgroups().map((c) => ({ own: path.join(c.mount, c.own), machine: path.join(c.mount, c.own, name) }));
  const argv = [
    "systemd-nspawn",
    ...(systemdIsPid1 ? [] : ["--register=no", "--keep-unit"]),
    "--boot",
    `--directory=${rootfs}`,
    "--volatile=overlay",
    `--machine=${name}`,
    "--private-network",
    "--console=read-only",
    `--bind-ro=${nodePath}`,
    ...(opts.bindReadOnly ?? []).map((p) => `--bind-ro=${p}`),
  ];
  const consoleLines: string[] = [];
  const keep = (line: string) => {
    consoleLines.push(line);
    if (consoleLines.length > CONSOLE_LINES_KEPT) consoleLines.shift();
  };
  const consoleTail = () => consoleLines.join("\n");

  const started = Date.now();
  for (const c of cgroups) mkdirSync(c.machine);
  let child: RunningChild;
  // The spawn below forks synchronously, so the child is born in the machine's cgroup while this process
  // steps in and straight back out (no other code of this process runs in between).
  moveSelfTo(cgroups.map((c) => c.machine));
  try {
    child = startChild(argv, { timeoutMs: LIFETIME_MS, stdout: keep, missingHint: "apt-get install systemd-container" });
  } finally {
    moveSelfTo(cgroups.map((c) => c.own));
  }
  const nspawnPid = child.pid!;
  let ended: ChildExit | undefined;
  let notStarted: unknown;
  void child.exit.then(
    (e) => (ended = e),
    (err: unknown) => (notStarted = err),
  );
  const ensureRunning = () => {
    if (notStarted) throw notStarted;
    if (ended)
      throw new PlumError(`systemd-nspawn exited with ${ended.exitCode ?? ended.signal}: ${ended.stderr.trim().split("\n").pop()}`, { detail: consoleTail() });
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // SIGTERM to nspawn halts the machine cleanly (its units are stopped); the deadline kills nspawn.
    if (!ended && isAlive(nspawnPid)) process.kill(nspawnPid, "SIGTERM");
    await withDeadline(`machine ${name} to halt`, HALT_TIMEOUT_MS, child.exit).catch(() => {
      if (isAlive(nspawnPid)) process.kill(nspawnPid, "SIGKILL");
    });
    await waitFor(
      `the cgroups of machine ${name} to be removed`,
      async () => {
        for (const c of cgroups) removeCgroupTree(c.machine);
        return cgroups.every((c) => !existsSync(c.machine)) || undefined;
      },
      { timeoutMs: 10_000 },
    );
    rmSync(path.join("/run/systemd/nspawn/propagate", name), { recursive: true, force: true });
  };

  try {
    const leaderPid = await waitFor(
      `the systemd of machine ${name} to start`,
      async () => {
        ensureRunning();
        return leaderOf(nspawnPid);
      },
      { timeoutMs: 10_000, firstDelayMs: 20, maxDelayMs: 200 },
    );
    const exec = (cmd: string[], o: ExecOptions = {}) =>
      runChild(["nsenter", `--target=${leaderPid}`, "--all", "--root", "--wd", "--", ...cmd], {
        timeoutMs: o.timeoutMs ?? 30_000,
        okCodes: o.okCodes,
        stdin: o.stdin,
        env: { PATH: PATH_INSIDE, LANG: "C.UTF-8", ...o.env },
        what: o.what ?? `${cmd.join(" ")} in machine ${name}`,
      });
    const execInNetwork = (cmd: string[], o: ExecOptions = {}) =>
      runChild(["nsenter", `--target=${leaderPid}`, "--net", "--", ...cmd], {
        timeoutMs: o.timeoutMs ?? 30_000,
        okCodes: o.okCodes,
        stdin: o.stdin,
        env: { ...process.env, ...o.env },
        what: o.what ?? `${cmd[0]} in the network of machine ${name}`,
      });
    const inside = (containerPath: string) => {
      if (!path.isAbsolute(containerPath)) throw new PlumError(`a path inside the machine must be absolute: ${containerPath}`);
      return path.join(`/proc/${leaderPid}/root`, containerPath);
    };
    // Until systemd has its private bus, systemctl fails to connect: retry that; `--wait` then waits out the boot.
    const bootTimeoutMs = opts.bootTimeoutMs ?? BOOT_TIMEOUT_MS;
    const state = await waitFor(
      `systemd in machine ${name} to finish booting`,
      async () => {
        ensureRunning();
        const r = await exec(["systemctl", "is-system-running", "--wait"], { timeoutMs: bootTimeoutMs, okCodes: [1] });
        const s = r.stdout.trim();
        if (s === "running" || s === "degraded") return s;
        throw new PlumError(`is-system-running: ${s || r.stderr.trim()}`);
      },
      { timeoutMs: bootTimeoutMs, firstDelayMs: 50, maxDelayMs: 500 },
    );
    return {
      name,
      leaderPid,
      nodePath,
      cgroupDirs: cgroups.map((c) => c.machine),
      bootMs: Date.now() - started,
      state,
      exec,
      execInNetwork,
      copyIn: (hostPath, containerPath) => {
        mkdirSync(path.dirname(inside(containerPath)), { recursive: true });
        cpSync(hostPath, inside(containerPath), { recursive: true, preserveTimestamps: true });
      },
      writeFile: (containerPath, content, mode = 0o644) => {
        mkdirSync(path.dirname(inside(containerPath)), { recursive: true });
        writeFileSync(inside(containerPath), content, { mode });
        chmodSync(inside(containerPath), mode);
      },
      consoleTail,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined); // the boot's error is the one to see
    if (err instanceof PlumError && !err.detail) throw new PlumError(err.message, { hint: err.hint, detail: consoleTail(), cause: err });
    throw err;
  }
}
