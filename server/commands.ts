import type { Command } from "commander";
import { serveProduct } from "./product/serve.ts";

export function registerServerCommands(program: Command): void {
  program
    .command("serve")
    .description("run one product instance (started by the agent; configured by its environment)")
    .action(async () => {
      await serveProduct();
    });
}
