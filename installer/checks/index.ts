import type { PreflightCheck } from "./check.ts";
import { clock } from "./clock.ts";
import { memory } from "./memory.ts";
import { operatingSystem } from "./operating-system.ts";
import { postgresServer } from "./postgres-server.ts";
import { diskSpace } from "./disk-space.ts";
import { dockerEngine } from "./docker-engine.ts";
import { nodeVersion } from "./node-version.ts";
import { portsFree } from "./ports.ts";
import { postgresClientTools, rcloneTool, resticTool } from "./tools.ts";

export const ALL_CHECKS: PreflightCheck[] = [
  operatingSystem,
  nodeVersion,
  memory,
  diskSpace,
  clock,
  resticTool,
  rcloneTool,
  postgresClientTools,
  postgresServer,
  portsFree,
  dockerEngine,
];
