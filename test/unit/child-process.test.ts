import { expect } from "chai";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { OUTPUT_TAIL_BYTES, runChild, startChild } from "../../lib/child-process.ts";
import { ChildProcessError, describeError } from "../../lib/errors.ts";

/** A tiny real child: this node running `code`. */
const node = (code: string) => [process.execPath, "-e", code];

describe("the child-process runner (real tiny processes)", () => {
  it("collects stdout and stderr and reports exit 0", async () => {
    const exit = await runChild(node("process.stdout.write('out'); process.stderr.write('err')"), { timeoutMs: 10_000 });
    expect([exit.exitCode, exit.signal, exit.timedOut, exit.stdout, exit.stderr]).to.deep.equal([0, null, false, "out", "err"]);
  });

  it("throws a ChildProcessError with the exit code, the command as shown and the tail of stderr", async () => {
    const err = await runChild(node("process.stderr.write('first\\nlast words\\n'); process.exit(3)"), {
      timeoutMs: 10_000,
      what: "the tool",
      shown: ["tool", "--secret-free"],
      hint: "do this",
    }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ChildProcessError);
    const e = err as ChildProcessError;
    expect([e.message, e.exitCode, e.signal, e.timedOut, e.command]).to.deep.equal([
      "the tool exited with 3: last words",
      3,
      null,
      false,
      ["tool", "--secret-free"],
    ]);
    expect(describeError(e)).to.equal(
      "error: the tool exited with 3: last words\n  command: tool --secret-free (exited with 3)\n  | first\n  | last words\n  hint: do this",
    );
  });

  it("accepts the exit codes a caller names as answers", async () => {
    const exit = await runChild(node("process.exit(3)"), { timeoutMs: 10_000, okCodes: [3] });
    expect(exit.exitCode).to.equal(3);
  });

  it("reports a child killed by a signal", async () => {
    const exit = await startChild(node("process.kill(process.pid, 'SIGKILL')"), { timeoutMs: 10_000 }).exit;
    expect([exit.exitCode, exit.signal, exit.timedOut]).to.deep.equal([null, "SIGKILL", false]);
    const err = await runChild(node("process.kill(process.pid, 'SIGKILL')"), { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect((err as ChildProcessError).message).to.match(/was killed by SIGKILL$/);
  });

  it("at the deadline sends SIGTERM, then SIGKILL after the grace to a child that ignores SIGTERM", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "plum-runner-"));
    try {
      const seen = path.join(dir, "seen");
      const code = `process.on('SIGTERM', () => require('fs').writeFileSync(${JSON.stringify(seen)}, 'SIGTERM')); console.log('ready'); setInterval(() => {}, 1000)`;
      const started = Date.now();
      const err = await runChild(node(code), { timeoutMs: 1500, killGraceMs: 500 }).catch((e: unknown) => e);
      const ms = Date.now() - started;
      expect(err).to.be.instanceOf(ChildProcessError);
      const e = err as ChildProcessError;
      expect([e.timedOut, e.signal, e.exitCode]).to.deep.equal([true, "SIGKILL", null]);
      expect(e.message).to.contain("was killed at its deadline of 2 s");
      expect(readFileSync(seen, "utf8")).to.equal("SIGTERM");
      expect(ms).to.be.within(1900, 8000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stops a child that ends on SIGTERM without waiting for the grace", async () => {
    const started = Date.now();
    const exit = await startChild(node("setInterval(() => {}, 1000)"), { timeoutMs: 300, killGraceMs: 10_000 }).exit;
    expect([exit.timedOut, exit.signal]).to.deep.equal([true, "SIGTERM"]);
    expect(Date.now() - started).to.be.below(5000);
  });

  it("ends the wait at the deadline even when a grandchild still holds the child's pipes open", async () => {
    const started = Date.now();
    const exit = await startChild(node("require('child_process').spawn('sleep', ['3'], { stdio: 'inherit' }); process.exit(0)"), { timeoutMs: 800 }).exit;
    expect([exit.exitCode, exit.timedOut]).to.deep.equal([0, true]);
    expect(Date.now() - started).to.be.below(2500);
  });

  it("sends the stop signal the caller names (restic cleans up on SIGINT)", async () => {
    const exit = await startChild(node("process.on('SIGINT', () => process.exit(42)); setInterval(() => {}, 1000)"), {
      timeoutMs: 1500,
      stopSignal: "SIGINT",
    }).exit;
    expect([exit.timedOut, exit.exitCode]).to.deep.equal([true, 42]);
  });

  it("stops a child when its AbortSignal fires", async () => {
    const controller = new AbortController();
    const running = startChild(node("setInterval(() => {}, 1000)"), { timeoutMs: 60_000, abort: controller.signal });
    setTimeout(() => controller.abort(), 200);
    const exit = await running.exit;
    expect([exit.aborted, exit.timedOut, exit.signal]).to.deep.equal([true, false, "SIGTERM"]);
  });

  it("keeps only the last 64 KiB of stderr, and an error carries the last OUTPUT_TAIL_BYTES of it", async () => {
    const code = "process.stderr.write('x'.repeat(100000) + 'END'); process.exit(1)";
    const exit = await startChild(node(code), { timeoutMs: 10_000 }).exit;
    expect(exit.stderr.length).to.equal(64 * 1024);
    expect(exit.stderr.endsWith("xEND")).to.equal(true);
    const err = (await runChild(node(code), { timeoutMs: 10_000 }).catch((e: unknown) => e)) as ChildProcessError;
    expect(err.outputTail.length).to.equal(OUTPUT_TAIL_BYTES);
    expect(err.outputTail.endsWith("xEND")).to.equal(true);
  });

  it("hands stdout line by line to a reader, the last unterminated line too", async () => {
    const lines: string[] = [];
    const exit = await runChild(node("process.stdout.write('a\\nb'); setTimeout(() => process.stdout.write('c\\nd'), 50)"), {
      timeoutMs: 10_000,
      stdout: (line) => lines.push(line),
    });
    expect(lines).to.deep.equal(["a", "bc", "d"]);
    expect(exit.stdout).to.equal("");
  });

  it("reads on to the end when the line reader throws, then reports what it threw", async () => {
    const lines: string[] = [];
    const exit = await startChild(node("console.log('1'); console.log('2'); console.log('3')"), {
      timeoutMs: 10_000,
      stdout: (line) => {
        lines.push(line);
        if (line === "1") throw new Error("cannot take 1");
      },
    }).exit;
    expect(lines).to.deep.equal(["1", "2", "3"]);
    expect(exit.outputError?.message).to.equal("cannot take 1");
    const err = await runChild(node("console.log('1')"), {
      timeoutMs: 10_000,
      stdout: () => {
        throw new Error("no");
      },
    }).catch((e: unknown) => e);
    expect((err as Error).message).to.equal("no");
  });

  it("feeds stdin from bytes, from a stream, or from a pipe the caller writes", async () => {
    const echo = node("process.stdin.pipe(process.stdout)");
    expect((await runChild(echo, { timeoutMs: 10_000, stdin: "from bytes" })).stdout).to.equal("from bytes");
    expect((await runChild(echo, { timeoutMs: 10_000, stdin: Readable.from(["from ", "a stream"]) })).stdout).to.equal("from a stream");
    const running = startChild(echo, { timeoutMs: 10_000, stdin: "pipe" });
    running.stdin!.end("from a pipe");
    expect((await running.exit).stdout).to.equal("from a pipe");
  });

  it("pipes stdout into a Writable and waits for it to finish; a second child can read the first's stdout", async () => {
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk);
        setTimeout(done, 5);
      },
    });
    const first = startChild(node("for (let i = 0; i < 100; i++) process.stdout.write('line ' + i + '\\n')"), { timeoutMs: 10_000, stdout: "pipe" });
    const second = startChild(node("process.stdin.pipe(process.stdout)"), { timeoutMs: 10_000, stdin: first.stdout!, stdout: sink });
    const [a, b] = await Promise.all([first.exit, second.exit]);
    expect([a.exitCode, b.exitCode]).to.deep.equal([0, 0]);
    expect(Buffer.concat(chunks).toString().split("\n")).to.have.length(101);
  });

  it("when the reader dies first, the producer's stream is destroyed so the producer does not wait forever", async () => {
    const producer = new PassThrough();
    const interval = setInterval(() => producer.write("data\n"), 10);
    try {
      const exit = await startChild(node("process.exit(5)"), { timeoutMs: 10_000, stdin: producer }).exit;
      expect(exit.exitCode).to.equal(5);
      expect(producer.destroyed).to.equal(true);
    } finally {
      clearInterval(interval);
    }
  });

  it("reports a sink's error after reading the child's output to the end", async () => {
    const sink = new Writable({
      write(_chunk, _enc, done) {
        done(new Error("disk full"));
      },
    });
    const exit = await startChild(node("for (let i = 0; i < 1000; i++) process.stdout.write('x'.repeat(1000))"), { timeoutMs: 10_000, stdout: sink }).exit;
    expect([exit.exitCode, exit.outputError?.message]).to.deep.equal([0, "disk full"]);
  });

  it("rejects with a ChildProcessError and the hint when the program does not exist", async () => {
    const running = startChild(["/nonexistent/tool", "x"], { timeoutMs: 10_000, stdin: "pipe", missingHint: "install the tool" });
    const err = await running.exit.catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ChildProcessError);
    expect([(err as ChildProcessError).message, (err as ChildProcessError).hint]).to.deep.equal([
      "cannot run /nonexistent/tool: spawn /nonexistent/tool ENOENT",
      "install the tool",
    ]);
  });

  it("passes the environment and the working directory it is given, and nothing else", async () => {
    const exit = await runChild(node("process.stdout.write(JSON.stringify([process.env.ONLY, process.env.HOME ?? null, process.cwd()]))"), {
      timeoutMs: 10_000,
      env: { ONLY: "this" },
      cwd: tmpdir(),
    });
    expect(JSON.parse(exit.stdout)).to.deep.equal(["this", null, tmpdir()]);
  });
});
