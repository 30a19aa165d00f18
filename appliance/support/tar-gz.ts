import { gzipSync } from "node:zlib";

/** One regular file of an archive, already in its final (redacted) form. */
export interface ArchiveMember {
  name: string;
  content: Buffer;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** A POSIX ustar header for a regular file (names up to 100 bytes: the bundle names its own members). */
function header(name: string, size: number, mtime: Date): Buffer {
  const block = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new Error(`archive member name longer than 100 bytes: ${name}`);
  block.write(name, 0, 100, "utf8");
  block.write(octal(0o600, 8), 100, "ascii");
  block.write(octal(0, 8), 108, "ascii");
  block.write(octal(0, 8), 116, "ascii");
  block.write(octal(size, 12), 124, "ascii");
  block.write(octal(Math.floor(mtime.getTime() / 1000), 12), 136, "ascii");
  block.write("        ", 148, "ascii"); // the checksum counts its own field as spaces
  block.write("0", 156, "ascii");
  block.write("ustar\0", 257, "ascii");
  block.write("00", 263, "ascii");
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7) + " ", 148, "ascii");
  return block;
}

/**
 * A gzip-compressed tar of the members, made in memory: the bundle is small (tails and summaries) and the
 * members never exist on disk unredacted, nor as loose files at all (no temporary folder to clean up).
 */
export function tarGz(members: ArchiveMember[], mtime: Date): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    parts.push(header(m.name, m.content.length, mtime), m.content);
    const pad = (BLOCK - (m.content.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return gzipSync(Buffer.concat(parts), { level: 9 });
}
