import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { PlumError } from "../../lib/errors.ts";

// A file name and nothing else: no separator, no leading dot (no "..", no hidden file), the writer's suffix.
const BUNDLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.tar\.gz$/;

/** The name does not name a support bundle of the folder (badly formed, absent, not a regular file). */
export class NoSuchSupportBundle extends PlumError {}

export interface OpenedSupportBundle {
  name: string;
  bytes: number;
  /** Open on the bundle itself: read it from here, never by its path again (it cannot be swapped meanwhile). */
  handle: FileHandle;
}

/**
 * Open a support bundle of `dir` (PLUM_HOME/support) by its file name, for reading. Only a regular file directly
 * in that folder opens: the name may not leave it, and a symbolic link there is refused (O_NOFOLLOW), so nothing
 * planted in the folder can point the reader at a file elsewhere.
 */
export async function openSupportBundle(dir: string, name: string): Promise<OpenedSupportBundle> {
  const missing = () => new NoSuchSupportBundle(`there is no support bundle ${JSON.stringify(name.slice(0, 200))}`);
  if (!BUNDLE_NAME.test(name)) throw missing();
  const folder = path.resolve(dir);
  const file = path.join(folder, name);
  if (path.dirname(file) !== folder) throw missing();
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO planted under a bundle's name must not hang the request at open (a regular file ignores it).
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (["ENOENT", "ELOOP", "ENOTDIR", "EISDIR"].includes((err as NodeJS.ErrnoException).code ?? "")) throw missing();
    throw err;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw missing();
    return { name, bytes: stat.size, handle };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
