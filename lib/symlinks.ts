import { lstatSync, renameSync, rmSync, symlinkSync } from "node:fs";

/** Whether `file` is a symbolic link (false when it is anything else or nothing). */
export function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Point the link `link` at `target` atomically (a new link renamed over it): a reader sees the old or the new, never none. */
export function pointLinkAt(link: string, target: string): void {
  const tmp = `${link}.switch-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}
