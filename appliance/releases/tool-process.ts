import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { ChildProcessError } from "../../lib/errors.ts";
import { withDeadline } from "../../lib/wait.ts";

const OUTPUT_LIMIT = 64 * 1024 * 1024;

function tail(text: string): string {
  return text.slice(-3000);
}

/** Resolve with the exit code once the child is gone; collects its stdout/stderr when they are pipes. */
function finished(child: ChildProcess, collected: { stdout: string; stderr: string }): Promise<number | null> {
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    if (collected.stdout.length < OUTPUT_LIMIT) collected.stdout += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (collected.stderr = tail(collected.stderr + d)));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve(code));
  });
}

/** Kill the children when `work` misses its deadline, so a stuck tar never outlives the caller. */
async function killOnTimeout<T>(what: string, timeoutMs: number, children: ChildProcess[], work: Promise<T>): Promise<T> {
  try {
    return await withDeadline(what, timeoutMs, work);
  } catch (err) {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    throw err;
  }
}

/** Run a tool (argument array, no shell) to completion within `timeoutMs`; returns its stdout. */
export async function runTool(argv: string[], opts: { what: string; timeoutMs: number; cwd?: string }): Promise<string> {
  const [cmd, ...args] = argv;
  const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "" };
  const code = await killOnTimeout(opts.what, opts.timeoutMs, [child], finished(child, out));
  if (code !== 0) throw new ChildProcessError(`${opts.what} failed`, { command: argv, exitCode: code, outputTail: tail(out.stderr + out.stdout) });
  return out.stdout;
}

/**
 * `tar -c … | gzip -LEVEL > file`, both spawned with argument arrays: tar's own --use-compress-program
 * would hand the level to /bin/sh, and gzip in a second process compresses while tar reads.
 */
export async function tarGzip(tarArgs: string[], file: string, opts: { level: number; cwd?: string; timeoutMs: number }): Promise<void> {
  const fd = openSync(file, "w", 0o644);
  try {
    const tar = spawn("tar", ["-c", "-f", "-", ...tarArgs], { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    const gzip = spawn("gzip", [`-${opts.level}`, "-n"], { stdio: [tar.stdout!, fd, "pipe"] });
    // gzip holds its own copy of the pipe; ours must not read (and so steal) any of tar's output.
    tar.stdout!.destroy();
    const tarOut = { stdout: "", stderr: "" };
    const gzipOut = { stdout: "", stderr: "" };
    const tarDone = new Promise<number | null>((resolve, reject) => {
      tar.stderr!.setEncoding("utf8").on("data", (d: string) => (tarOut.stderr = tail(tarOut.stderr + d)));
      tar.once("error", reject);
      tar.once("close", resolve);
    });
    const [tarCode, gzipCode] = await killOnTimeout("packing app.tgz", opts.timeoutMs, [tar, gzip], Promise.all([tarDone, finished(gzip, gzipOut)]));
    if (tarCode !== 0)
      throw new ChildProcessError("tar failed while packing app.tgz", {
        command: ["tar", "-c", "-f", "-", ...tarArgs],
        exitCode: tarCode,
        outputTail: tarOut.stderr,
      });
    if (gzipCode !== 0)
      throw new ChildProcessError("gzip failed while packing app.tgz", { command: ["gzip", `-${opts.level}`], exitCode: gzipCode, outputTail: gzipOut.stderr });
  } finally {
    closeSync(fd);
  }
}
