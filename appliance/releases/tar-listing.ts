import path from "node:path";

/** One member of a tar as `tar -tv` lists it. */
export interface TarMember {
  /** "-" file, "d" folder, "l" symlink, "h" hard link, others: devices, fifos… */
  type: string;
  mode: string;
  size: number;
  name: string;
  linkTarget?: string;
}

// GNU tar: "-rw-r--r-- 0/0        1234 2024-11-23 11:24 name" (devices show "major,minor" as the size).
const LINE = /^(\S)(\S{9})\s+\S+\s+([\d,]+)\s+\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? (.*)$/;

/** Parse `tar -tv` output; a line it cannot read comes back as `unreadable` (the caller refuses the archive). */
export function parseTarListing(output: string): { members: TarMember[]; unreadable: string[] } {
  const members: TarMember[] = [];
  const unreadable: string[] = [];
  for (const line of output.split("\n")) {
    if (line === "") continue;
    const m = LINE.exec(line);
    if (!m) {
      unreadable.push(line);
      continue;
    }
    const [, type, mode, size, rest] = m;
    const member: TarMember = { type, mode, size: /^\d+$/.test(size) ? Number(size) : 0, name: rest };
    const arrow = type === "l" ? " -> " : type === "h" ? " link to " : undefined;
    if (arrow) {
      const parts = rest.split(arrow);
      // A name that itself holds the arrow could hide where the link points: not ours to guess.
      if (parts.length !== 2) {
        unreadable.push(line);
        continue;
      }
      [member.name, member.linkTarget] = parts;
    }
    members.push(member);
  }
  return { members, unreadable };
}

/** Why a member name could write outside the folder it is unpacked in (undefined: it cannot). */
export function unsafeName(name: string): string | undefined {
  if (name === "" || name.startsWith("/")) return "an absolute or empty path";
  // GNU tar escapes unprintable bytes as \ooo or \n; our own bundles never hold such names.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (/[\\\x00-\x1f\x7f]/.test(name)) return "an escaped or unprintable character";
  if (name.split("/").includes("..")) return "a `..` component";
  return undefined;
}

/** Why a member may not be unpacked from a release's app.tgz (undefined: it may). */
export function unsafeMember(member: TarMember): string | undefined {
  const nameProblem = unsafeName(member.name);
  if (nameProblem) return nameProblem;
  if (/[sStT]/.test(member.mode)) return `mode ${member.type}${member.mode} (set-id or sticky bit)`;
  if (member.type === "-" || member.type === "d") return undefined;
  if (member.type === "l") {
    const target = member.linkTarget ?? "";
    if (target === "" || target.startsWith("/")) return `a symlink to the absolute path ${target}`;
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(member.name), target));
    if (resolved === ".." || resolved.startsWith("../")) return `a symlink to ${target}, outside the release`;
    return undefined;
  }
  return `a member of type "${member.type}" (only files, folders and symlinks within the release are allowed)`;
}
