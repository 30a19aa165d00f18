#!/usr/bin/env node
// plumctl: runs from TypeScript sources (development checkout, through tsx) or from the compiled dist/ of a release.
import { existsSync } from "node:fs";

const source = new URL("../cli/main.ts", import.meta.url);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(source.href);
} else {
  await import(new URL("../dist/cli/main.js", import.meta.url).href);
}
