import { copyFileSync, existsSync, mkdirSync, realpathSync, renameSync, symlinkSync } from "node:fs";
import path from "node:path";
import { APP_ROOT } from "../../lib/paths.ts";
import { checkoutDist } from "./test-bundles.ts";

function link(target: string, at: string): void {
  try {
    symlinkSync(target, at);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

/**
 * `bin/plumctl.js` of this checkout compiled once per run and laid out as a release is (dist/, bin/, web/,
 * package.json, node_modules), for the agents and plumctl calls the e2e suites start: tsx then never
 * compiles the whole program again in each process, which on two cores was the largest cost of the suite.
 * The agent it starts runs its product instances from the same compiled tree. Tests that are about the
 * sources themselves (which modules `plumctl serve` loads, `npm start`) run bin/plumctl.js of the checkout.
 */
export async function compiledPlumctl(): Promise<string> {
  const dist = await checkoutDist();
  const root = path.dirname(dist);
  const bin = path.join(root, "bin", "plumctl.js");
  if (existsSync(bin)) return bin;
  for (const name of ["package.json", "CHANGELOG.md"]) copyFileSync(path.join(APP_ROOT, name), path.join(root, name));
  link(path.join(APP_ROOT, "web"), path.join(root, "web"));
  // To the real folder (a worktree's node_modules may itself be a link): the docker runtime mounts a release's
  // outward links at the folder they name, which must be where the modules are.
  link(realpathSync(path.join(APP_ROOT, "node_modules")), path.join(root, "node_modules"));
  mkdirSync(path.join(root, "bin"), { recursive: true });
  const staged = `${bin}.${process.pid}`;
  copyFileSync(path.join(APP_ROOT, "bin", "plumctl.js"), staged);
  // Renamed into place last: a worker that sees bin/plumctl.js sees the whole layout.
  renameSync(staged, bin);
  return bin;
}
