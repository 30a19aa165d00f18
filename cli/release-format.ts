import { changeGroups, changesNote } from "../appliance/releases/release-changes.ts";
import type { ReleaseInfo } from "../appliance/releases/release-store.ts";

/** Items of a release's changes that `plumctl release list` shows, each cut to one line; the rest is one command away. */
export const SHORT_CHANGES_ITEMS = 3;
const SHORT_ITEM_CHARS = 110;

function columns(table: string[][]): string {
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  return table
    .map(
      (row) =>
        row
          .map((cell, i) => cell.padEnd(widths[i]))
          .join("  ")
          .trimEnd() + "\n",
    )
    .join("");
}

function shortItems(text: string): { lines: string[]; more: number } {
  const items = changeGroups(text).flatMap((g) => g.items.map((item) => (g.heading ? `${g.heading}: ${item}` : item)));
  const cut = (line: string) => (line.length > SHORT_ITEM_CHARS ? `${line.slice(0, SHORT_ITEM_CHARS - 1)}…` : line);
  return { lines: items.slice(0, SHORT_CHANGES_ITEMS).map((i) => `- ${cut(i)}`), more: Math.max(0, items.length - SHORT_CHANGES_ITEMS) };
}

/** What a release changes: which changelog section it is, then the section as written (`full`) or its first items. */
export function changesBlock(release: ReleaseInfo, full: boolean): string {
  const changes = release.manifest.changes;
  if (!changes) return `${release.version}: no changelog came with this release\n`;
  const { lines, more } = full ? { lines: changes.text.split("\n"), more: 0 } : shortItems(changes.text);
  return [
    `${release.version}: ${changesNote(release.version, changes)}`,
    ...(changes.text.trim() === "" ? ["(the section lists no changes)"] : lines),
    ...(more > 0 ? [`… ${more} more: \`plumctl release show ${release.version}\``] : []),
  ]
    .map((l, i) => (i === 0 || l === "" ? l : `  ${l}`) + "\n")
    .join("");
}

/** `plumctl release list`: the table, then what each release changes. */
export function releaseList(releases: ReleaseInfo[], opts: { changes?: boolean } = {}): string {
  const rows = releases.map((r) => [
    r.version,
    r.manifest.schemaVersion,
    r.installed ? "-" : r.manifest.minimumVersion,
    r.installed ? "installed" : r.importedAt!.toISOString(),
  ]);
  const table = columns([["VERSION", "SCHEMA", "UPGRADES FROM", "IMPORTED"], ...rows]);
  return [table, ...releases.map((r) => changesBlock(r, !!opts.changes))].join("\n");
}

/** `plumctl release show VERSION`: the manifest's facts and the whole changelog section. */
export function releaseDetail(release: ReleaseInfo): string {
  const m = release.manifest;
  const facts = columns([
    ["release", `${m.version} (${release.installed ? "installed" : `imported ${release.importedAt!.toISOString()}`})`],
    ["schema", m.schemaVersion],
    ["upgrades from", release.installed ? "-" : m.minimumVersion],
    ["suites", m.suites.join(", ") || "none"],
    ["migrations", String(m.migrations.length)],
    ["created", m.createdAt],
    ...(m.image ? [["image", `${m.image.tag} ${m.image.id}`]] : []),
  ]);
  return `${facts}\n${changesBlock(release, true)}`;
}
