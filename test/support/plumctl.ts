import { execFile } from "node:child_process";
import { compiledPlumctl } from "./compiled-plumctl.ts";

/** Run the real `plumctl` CLI; resolves with its exit code and output (never rejects on a non-zero exit). */
export async function plumctl(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = await compiledPlumctl();
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
