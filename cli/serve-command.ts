import type { Command } from "commander";
import { serveProduct } from "../product/serve.ts";

/** Kept apart from the other product commands: a product instance loads the product and lib/, nothing of the agent. */
export function register(program: Command): void {
  program
    .command("serve")
    .description("run one product instance (started by the agent; configured by its environment)")
    .action(async () => {
      await serveProduct();
    });
}
