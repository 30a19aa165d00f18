import type { PlumConfig } from "../../lib/config.ts";

export type CheckCategory = "install" | "start" | "doctor";

/** One preflight check: throws a PlumError with the measured numbers and a hint when it fails. */
export interface PreflightCheck {
  id: string;
  title: string;
  categories: CheckCategory[];
  run(ctx: { config: PlumConfig }): Promise<string | void>;
}
