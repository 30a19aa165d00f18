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

/** A member's name as a path inside the archive: no leading "./", no trailing "/". */
const memberPath = (name: string) =>
  path.posix
    .normalize(name)
    .replace(/\/+$/, "")
    .replace(/^(\.\/)+/, "");

/** The first symlink member that `rel` (a path inside the archive) goes through, not counting `rel` itself. */
function symlinkOnTheWay(rel: string, symlinks: Set<string>): string | undefined {
  const parts = rel.split("/");
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join("/");
    if (symlinks.has(prefix)) return prefix;
  }
  return undefined;
}

/**
 * The symlink member that the link at `rel` to `target` passes through on its way (its last component may
 * be a link: that one is checked on its own). Walked component by component, not normalised, because
 * `x/..` is not `.` when `x` is a link.
 */
function linkThroughLink(rel: string, target: string, symlinks: Set<string>): string | undefined {
  const at = path.posix
    .dirname(rel)
    .split("/")
    .filter((c) => c !== "." && c !== "");
  const steps = target.split("/").filter((c) => c !== "." && c !== "");
  for (let i = 0; i < steps.length - 1; i++) {
    if (steps[i] === "..") at.pop();
    else {
      at.push(steps[i]);
      if (symlinks.has(at.join("/"))) return at.join("/");
    }
  }
  return undefined;
}

/**
 * Every member of an archive that may not be unpacked, with why: each on its own (unsafeMember), and
 * together, since where a path lands depends on the links unpacked before it. A member under a symlink
 * member, or a link whose target goes through one, is refused: `p -> .`, `q -> .`, `p/q/r -> ../..` each look
 * harmless alone, and together leave `r` pointing at the release folder's grandparent.
 */
export function unsafeMembers(members: TarMember[]): { member: TarMember; why: string }[] {
  const symlinks = new Set(members.filter((m) => m.type === "l").map((m) => memberPath(m.name)));
  const found: { member: TarMember; why: string }[] = [];
  for (const member of members) {
    const alone = unsafeMember(member);
    if (alone) {
      found.push({ member, why: alone });
      continue;
    }
    const rel = memberPath(member.name);
    const under = symlinkOnTheWay(rel, symlinks);
    if (under) {
      found.push({ member, why: `a path under the symlink ${under} (a member is never unpacked through a link)` });
      continue;
    }
    if (member.type === "l") {
      const via = linkThroughLink(rel, member.linkTarget!, symlinks);
      if (via) found.push({ member, why: `a symlink to ${member.linkTarget} through the symlink ${via} (a link is never followed through another)` });
    }
  }
  return found;
}
