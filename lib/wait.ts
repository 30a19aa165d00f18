import { setTimeout as sleep } from "node:timers/promises";
import { TimeoutError } from "./errors.ts";

export { sleep };

/**
 * Poll `probe` until it returns a value other than undefined, with growing sleeps, until `timeoutMs`.
 * A timeout reports the last status seen (what `probe` last threw or `describe` last said).
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: {
    timeoutMs: number;
    firstDelayMs?: number;
    maxDelayMs?: number;
    /** What `probe` may throw that no retry mends (the server it waits for has exited): thrown at once. */
    fatal?: (err: unknown) => boolean;
  },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let delay = opts.firstDelayMs ?? 50;
  let lastStatus: string;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      lastStatus = "not ready";
    } catch (err) {
      if (opts.fatal?.(err)) throw err;
      lastStatus = err instanceof Error ? err.message : String(err);
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new TimeoutError(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${what}`, {
        detail: `last status: ${lastStatus}`,
      });
    }
    await sleep(Math.min(delay, left));
    delay = Math.min(delay * 2, opts.maxDelayMs ?? 1000);
  }
}

/** Run `work` but give up after `timeoutMs` with a TimeoutError naming `what`. */
export async function withDeadline<T>(what: string, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${Math.round(timeoutMs / 1000)} s: ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
