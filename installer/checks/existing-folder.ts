import { existsSync } from "node:fs";
import path from "node:path";

/** `dir`, or its nearest ancestor that exists: where a folder still to be made will take its space from. */
export function nearestExisting(dir: string): string {
  let at = path.resolve(dir);
  while (!existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}
