// Merchant validate-and-redeem throughput and latency through the product's POS API, next to a bare Express
// handler on the same machine in the same run. The servers run in a child process; this process only makes
// load (autocannon), on loopback, and stops by itself. Run: npx tsx bench/redemption.ts
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { withDeadline } from "../lib/wait.ts";
import { fmt } from "./support.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);

function run(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon({ connections: CONNECTIONS, duration: SECONDS, ...opts }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

const dir = mkdtempSync(path.join(tmpdir(), "plum-bench-codes-"));
const codesFile = path.join(dir, "codes.txt");
const server = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "redemption-server.ts"), codesFile], {
  stdio: ["pipe", "pipe", "inherit"],
});
try {
  const line = await withDeadline(
    "the bench servers to start",
    180_000,
    new Promise<string>((resolve, reject) => {
      createInterface({ input: server.stdout! }).once("line", resolve);
      server.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
    }),
  );
  const { product, bare, apiKey } = JSON.parse(line) as { product: string; bare: string; apiKey: string };
  const codes = readFileSync(codesFile, "utf8").split("\n");

  let next = 0;
  const request = (url: string) => ({
    url: `${url}/api/pos/redeem`,
    method: "POST" as const,
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
    requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, body: JSON.stringify({ code: codes[next++ % codes.length] }) }) }],
  });

  process.stdout.write("warming up…\n");
  await run({ ...request(bare), duration: 2 });
  const bareResult = await run(request(bare));
  next = 0;
  const productResult = await run(request(product));
  if (next > codes.length) process.stdout.write(`note: ${next} requests for ${codes.length} codes: codes were reused (refused, non-2xx)\n`);

  const row = (name: string, r: autocannon.Result) =>
    `${name.padEnd(28)} ${fmt(r.requests.average, 0).padStart(9)} req/s   p50 ${fmt(r.latency.p50, 1).padStart(6)} ms   p99 ${fmt(r.latency.p99, 1).padStart(6)} ms   non-2xx ${r.non2xx}   errors ${r.errors}`;
  process.stdout.write(`\nPOS validate-and-redeem, ${CONNECTIONS} connections, ${SECONDS} s each, loopback, servers in a separate process\n`);
  process.stdout.write(row("bare Express handler", bareResult) + "\n");
  process.stdout.write(row("plum POST /api/pos/redeem", productResult) + "\n");
  process.stdout.write(
    `ratio plum / bare: throughput ${fmt(productResult.requests.average / bareResult.requests.average, 3)}, p50 ${fmt(productResult.latency.p50 / Math.max(bareResult.latency.p50, 0.001), 1)}×, p99 ${fmt(productResult.latency.p99 / Math.max(bareResult.latency.p99, 0.001), 1)}×\n`,
  );
} finally {
  server.kill("SIGTERM");
  await withDeadline("the bench servers to stop", 60_000, new Promise((r) => server.once("exit", r))).catch(() => server.kill("SIGKILL"));
  rmSync(dir, { recursive: true, force: true });
}
