import type { Logger } from "../lib/logger.ts";

interface Done {
  name: string;
  stop: () => Promise<unknown>;
}

/**
 * An ordered start list: each step runs when it is added and leaves its stop behind. A failed step makes the
 * list run the stops of the steps already done, backwards; `stop()` runs them all backwards. A stop that fails
 * is logged and the list goes on: a half-stopped appliance is worse than a noisy one.
 */
export class StartList {
  private readonly done: Done[] = [];
  private stopping?: Promise<void>;

  constructor(private readonly log: Logger) {}

  /** Run step `name`; `stop` (given what it started) joins the list only when the step succeeded. */
  async run<T>(name: string, start: () => Promise<T> | T, stop?: (started: T) => Promise<unknown> | unknown): Promise<T> {
    let started: T;
    try {
      started = await start();
    } catch (err) {
      this.log.error({ step: name, err: (err as Error).message }, "agent start failed; undoing the steps done");
      await this.stop();
      throw err;
    }
    if (stop) this.done.push({ name, stop: async () => stop(started) });
    return started;
  }

  /** The names of the steps done, in start order (what a stop will undo, backwards). */
  get names(): string[] {
    return this.done.map((d) => d.name);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const step of [...this.done].reverse()) {
        try {
          await step.stop();
        } catch (err) {
          this.log.warn({ step: step.name, err: (err as Error).message }, "a stop step failed");
        }
      }
      this.done.length = 0;
    })();
    return this.stopping;
  }
}
