import type { AnswerListener } from "../proxy/edge-proxy.ts";
import type { HealthReport } from "../runtimes/runtime.ts";

export interface SoakThresholds {
  seconds: number;
  maxErrorRatio: number;
  maxP99Ms: number;
  minRequests: number;
  unhealthyChecks: number;
}

export interface SoakResult {
  seconds: number;
  requests: number;
  errors5xx: number;
  p99Ms: number | null;
  healthFailures: number;
  /** Why the soak failed; undefined when the release held. */
  breach?: string;
  breachAt?: Date;
}

/** The p99 of latencies in ms (nearest rank), or null with none. */
export function p99(latenciesMs: number[]): number | null {
  if (latenciesMs.length === 0) return null;
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)];
}

/** Judge counters against thresholds: the first breach found, or undefined. Pure, so it is tested alone. */
export function judgeSoak(seen: { requests: number; errors5xx: number; latenciesMs: number[]; failuresInARow: number }, t: SoakThresholds): string | undefined {
  if (seen.failuresInARow >= t.unhealthyChecks) return `health: ${seen.failuresInARow} failed health checks in a row (limit ${t.unhealthyChecks})`;
  if (seen.requests < t.minRequests) return undefined;
  const ratio = seen.errors5xx / seen.requests;
  if (ratio > t.maxErrorRatio) return `5xx ratio ${(ratio * 100).toFixed(1)} % over ${seen.requests} requests (limit ${(t.maxErrorRatio * 100).toFixed(1)} %)`;
  const latency = p99(seen.latenciesMs);
  if (latency !== null && latency > t.maxP99Ms) return `p99 latency ${Math.round(latency)} ms over ${seen.requests} requests (limit ${t.maxP99Ms} ms)`;
  return undefined;
}

/**
 * Watch a promoted version for the soak period: the proxy's own answers for that version (5xx ratio, p99) and a
 * health probe each second. Resolves at the first breach or when the period ends; `stop()` ends it early.
 */
export function watchSoak(opts: {
  onAnswer(listener: AnswerListener): () => void;
  version: string;
  health: () => Promise<HealthReport>;
  thresholds: SoakThresholds;
  onTick?: (r: SoakResult) => void;
}): { result: Promise<SoakResult>; stop(): void } {
  const started = Date.now();
  const seen = { requests: 0, errors5xx: 0, latenciesMs: [] as number[], failuresInARow: 0, failures: 0 };
  const unsubscribe = opts.onAnswer((a) => {
    if (a.version !== opts.version) return;
    seen.requests++;
    if (a.status >= 500) seen.errors5xx++;
    // Bounded memory on a long soak under load: keep the newest 100k latencies.
    if (seen.latenciesMs.length >= 100_000) seen.latenciesMs.shift();
    seen.latenciesMs.push(a.seconds * 1000);
  });
  let stopped = false;
  let wake: (() => void) | undefined;
  const snapshot = (breach?: string): SoakResult => ({
    seconds: (Date.now() - started) / 1000,
    requests: seen.requests,
    errors5xx: seen.errors5xx,
    p99Ms: p99(seen.latenciesMs),
    healthFailures: seen.failures,
    ...(breach ? { breach, breachAt: new Date() } : {}),
  });
  const result = (async () => {
    try {
      while (!stopped && Date.now() - started < opts.thresholds.seconds * 1000) {
        const h = await opts.health();
        if (h.ready) seen.failuresInARow = 0;
        else {
          seen.failuresInARow++;
          seen.failures++;
        }
        const breach = judgeSoak(seen, opts.thresholds);
        if (breach) return snapshot(breach);
        opts.onTick?.(snapshot());
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 1000);
        });
      }
      return snapshot();
    } finally {
      unsubscribe();
    }
  })();
  return {
    result,
    stop() {
      stopped = true;
      wake?.();
    },
  };
}
