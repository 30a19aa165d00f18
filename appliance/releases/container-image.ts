import { chmodSync, copyFileSync, createReadStream, createWriteStream, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type Docker from "dockerode";
import { runChild, startChild } from "../../lib/child-process.ts";
import { PlumError } from "../../lib/errors.ts";
import { withDeadline } from "../../lib/wait.ts";

/**
 * Images with no registry and no base image: a root filesystem made of this machine's node binary, the
 * shared libraries it and the release's native addons load (as `ldd` resolves them), a passwd file with one
 * unprivileged user, and the release tree under /app, handed to the engine as a `docker import`. Nothing is
 * pulled; the same release tree always gives the same files.
 */

/** The unprivileged user product containers run as (in the image's /etc/passwd). */
export const CONTAINER_UID = 10001;
export const CONTAINER_GID = 10001;
/** Where the release lives inside the image, and the node binary. */
export const CONTAINER_APP_DIR = "/app";
export const CONTAINER_NODE = "/usr/local/bin/node";
/** The port a product instance listens on inside its container. */
export const CONTAINER_PORT = 8080;

export const PRODUCT_IMAGE_REPOSITORY = "plum-product";
export function productImageTag(version: string, repository = PRODUCT_IMAGE_REPOSITORY): string {
  return `${repository}:${version}`;
}

/** Native addons (*.node) under `dir`, skipping nothing: each one's libraries must be in the image. */
function nativeAddons(dir: string, found: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) nativeAddons(full, found);
    else if (entry.isFile() && entry.name.endsWith(".node")) found.push(full);
  }
  return found;
}

/** The absolute paths `ldd` lists for a binary (the vDSO has none). */
export function lddPaths(output: string): string[] {
  const paths: string[] = [];
  for (const line of output.split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) paths.push(m[1]);
  }
  return paths;
}

/** The libraries node and the addons under `trees` load, each at the path the dynamic loader looks for it. */
export async function runtimeLibraries(binaries: string[]): Promise<string[]> {
  const libs = new Set<string>();
  for (const binary of binaries) {
    const exit = await runChild(["ldd", binary], { what: `ldd ${binary}`, timeoutMs: 30_000, okCodes: [0, 1], missingHint: "ldd ships with libc-bin" });
    if (exit.exitCode !== 0) continue; // a statically linked addon: nothing to add
    for (const lib of lddPaths(exit.stdout)) libs.add(lib);
  }
  return [...libs].sort();
}

export interface ImageSpec {
  /** `repository:tag` to give the image. */
  tag: string;
  /** The tree put at /app (an unpacked release: dist/, bin/, node_modules/, web/). */
  appDir: string;
  /** Labels on the image (never secrets). */
  labels?: Record<string, string>;
  /** Extra files to add, by their path inside the image (e.g. the agent's tools). */
  extraFiles?: { from: string; to: string; mode?: number }[];
  /** USER of the image; default the unprivileged CONTAINER_UID. */
  user?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * The import's changes: who runs, where, and how the release's `plumctl` starts. No secret goes here (an
 * image's configuration is readable by anyone who can list images).
 */
export function importChanges(spec: ImageSpec): string[] {
  const env = { NODE_ENV: "production", ...spec.env };
  return [
    `USER ${spec.user ?? `${CONTAINER_UID}:${CONTAINER_GID}`}`,
    `WORKDIR ${CONTAINER_APP_DIR}`,
    ...Object.entries(env).map(([k, v]) => `ENV ${k}=${v}`),
    `ENTRYPOINT ["${CONTAINER_NODE}", "${CONTAINER_APP_DIR}/bin/plumctl.js"]`,
    `CMD ["serve"]`,
    `EXPOSE ${CONTAINER_PORT}`,
    ...Object.entries(spec.labels ?? {}).map(([k, v]) => `LABEL ${k}=${JSON.stringify(v)}`),
  ];
}

/** The tar of the root filesystem: the staged runtime files as they are, the app tree under app/. */
export function rootfsTarArgs(stage: string, appDir: string): string[] {
  const app = readdirSync(appDir).sort();
  return [
    "tar",
    "-c",
    "-f",
    "-",
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    // Members given as ./x come from the app tree and land under app/; symlink targets are left alone.
    "--transform=s,^\\./,app/,S",
    "-C",
    stage,
    ...readdirSync(stage).sort(),
    ...(app.length > 0 ? ["-C", appDir, ...app.map((n) => `./${n}`)] : []),
  ];
}

/** The runtime part of the root filesystem in `stage`: node, its libraries, passwd/group, /tmp. */
async function stageRuntime(stage: string, appDir: string, extraFiles: ImageSpec["extraFiles"] = []): Promise<void> {
  const node = realpathSync(process.execPath);
  const binaries = [node, ...nativeAddons(appDir), ...extraFiles.filter((f) => (f.mode ?? 0o644) & 0o111).map((f) => f.from)];
  const put = (from: string, to: string, mode?: number) => {
    const dest = path.join(stage, to);
    mkdirSync(path.dirname(dest), { recursive: true });
    copyFileSync(realpathSync(from), dest);
    if (mode !== undefined) chmodSync(dest, mode);
  };
  put(node, CONTAINER_NODE, 0o755);
  for (const lib of await runtimeLibraries(binaries)) put(lib, lib);
  for (const file of extraFiles) put(file.from, file.to, file.mode);
  mkdirSync(path.join(stage, "etc"), { recursive: true });
  writeFileSync(
    path.join(stage, "etc", "passwd"),
    `root:x:0:0:root:/:/sbin/nologin\nplum:x:${CONTAINER_UID}:${CONTAINER_GID}:plum:${CONTAINER_APP_DIR}:/sbin/nologin\n`,
  );
  writeFileSync(path.join(stage, "etc", "group"), `root:x:0:\nplum:x:${CONTAINER_GID}:\n`);
  mkdirSync(path.join(stage, "tmp"), { recursive: true });
  chmodSync(path.join(stage, "tmp"), 0o1777);
}

/** Read an engine progress stream to its end; an `error` in it is the call's failure. */
export function followProgress(docker: Docker, stream: NodeJS.ReadableStream, what: string): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, output: unknown[]) => {
      if (err) return reject(new PlumError(`${what} failed: ${err.message}`));
      const failed = (output as { error?: string }[]).find((o) => o?.error);
      if (failed) return reject(new PlumError(`${what} failed: ${failed.error}`));
      resolve(output);
    });
  });
}

/** Build `spec.tag` from the release tree with `docker import`; resolves with the image id. */
export async function buildImage(docker: Docker, spec: ImageSpec, workDir: string): Promise<string> {
  const timeoutMs = spec.timeoutMs ?? 5 * 60_000;
  const stage = path.join(workDir, "rootfs");
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  try {
    await stageRuntime(stage, spec.appDir, spec.extraFiles);
    const [repo, tag] = spec.tag.split(":");
    const tar = startChild(rootfsTarArgs(stage, spec.appDir), { stdout: "pipe", timeoutMs });
    const imported = withDeadline(
      `docker import of ${spec.tag}`,
      timeoutMs,
      (docker.importImage(tar.stdout!, { repo, tag, changes: importChanges(spec) }) as unknown as Promise<NodeJS.ReadableStream>).then((s) =>
        followProgress(docker, s, `docker import of ${spec.tag}`),
      ),
    );
    const [progress, exit] = await Promise.all([imported, tar.exit]);
    if (exit.exitCode !== 0) throw new PlumError(`tar of the ${spec.tag} root filesystem failed: ${exit.stderr.slice(-500)}`);
    const status = (progress as { status?: string }[]).map((p) => p.status ?? "").find((s) => s.startsWith("sha256:"));
    return status ?? (await docker.getImage(spec.tag).inspect()).Id;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** `docker save` of one image to `file` (the format `docker load` and the bundle's image.tar use). */
export async function saveImage(docker: Docker, tag: string, file: string, timeoutMs = 5 * 60_000): Promise<void> {
  const stream = await docker.getImage(tag).get();
  await withDeadline(`docker save of ${tag}`, timeoutMs, pipeline(stream, createWriteStream(file, { mode: 0o644 })));
}

/** `docker load` of an image.tar; resolves with the tags it loaded. */
export async function loadImage(docker: Docker, file: string, timeoutMs = 5 * 60_000): Promise<string[]> {
  const stream = await docker.loadImage(createReadStream(file), { quiet: true });
  const output = await withDeadline(`docker load of ${path.basename(file)}`, timeoutMs, followProgress(docker, stream as NodeJS.ReadableStream, "docker load"));
  const tags: string[] = [];
  for (const o of output as { stream?: string }[]) {
    const m = /Loaded image: (\S+)/.exec(o?.stream ?? "");
    if (m) tags.push(m[1]);
  }
  return tags;
}
