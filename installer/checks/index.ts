import type { PreflightCheck } from "./check.ts";
import { diskSpace } from "./disk-space.ts";
import { dockerEngine } from "./docker-engine.ts";
import { nodeVersion } from "./node-version.ts";
import { portsFree } from "./ports.ts";
import { postgresClientTools, rcloneTool, resticTool } from "./tools.ts";

export const ALL_CHECKS: PreflightCheck[] = [nodeVersion, diskSpace, resticTool, rcloneTool, postgresClientTools, portsFree, dockerEngine];
