// `node --import ./test/support/module-recorder.mjs …`: appends the URL of every module the process resolves or
// loads to the file named by PLUM_TEST_MODULE_LOG, one a line (tests assert what a command does not load).
import { appendFileSync } from "node:fs";
import { register } from "node:module";

const log = process.env.PLUM_TEST_MODULE_LOG;

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (log) appendFileSync(log, resolved.url + "\n");
  return resolved;
}

export async function load(url, context, nextLoad) {
  if (log) appendFileSync(log, url + "\n");
  return nextLoad(url, context);
}

// Registered from the main thread; the hooks above then run in the loader thread that node starts for them.
if (log && !process.env.PLUM_TEST_MODULE_RECORDER_HOOKS) {
  process.env.PLUM_TEST_MODULE_RECORDER_HOOKS = "1";
  register(import.meta.url);
}
