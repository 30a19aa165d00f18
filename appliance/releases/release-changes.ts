import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { PlumError } from "../../lib/errors.ts";
import { releaseChangesSchema, type ReleaseChanges } from "./bundle-manifest.ts";

export const CHANGELOG_FILE = "CHANGELOG.md";

// Keep a Changelog: `## [1.2.0] - 2026-12-01`, `## [Unreleased]` (brackets and date optional here).
const SECTION_HEADING = /^##\s+\[?([^\]\s]+)\]?(?:\s+-\s+(\d{4}-\d{2}-\d{2}))?\s*$/;
// `[1.2.0]: https://…` lines serve Markdown's links, not the reader of a section.
const LINK_DEFINITION = /^\[[^\]]+\]:\s*\S/;

interface Section {
  name: string;
  date?: string;
  lines: string[];
}

function sections(changelog: string): Section[] {
  const found: Section[] = [];
  for (const line of changelog.replace(/\r\n?/g, "\n").split("\n")) {
    const heading = SECTION_HEADING.exec(line);
    if (heading) found.push({ name: heading[1], date: heading[2], lines: [] });
    else if (line.startsWith("## ")) found.push({ name: line.slice(3).trim(), lines: [] });
    else if (found.length > 0 && !LINK_DEFINITION.test(line)) found[found.length - 1].lines.push(line.trimEnd());
  }
  return found;
}

/**
 * The section of a Keep a Changelog text for `version`, or its Unreleased section when it has none for that
 * version (section says which); undefined when it has neither.
 */
export function changelogSection(changelog: string, version: string): ReleaseChanges | undefined {
  const all = sections(changelog);
  const own = all.find((s) => s.name === version) ?? all.find((s) => s.name.toLowerCase() === "unreleased");
  if (!own) return undefined;
  const text = own.lines.join("\n").replace(/^\n+|\n+$/g, "");
  return own.name === version ? { section: version, ...(own.date && { date: own.date }), text } : { section: "Unreleased", text };
}

/** What a bundle of `version` built from `sourceDir` carries as its changes: undefined for a tree without a changelog. */
export function releaseChangesIn(sourceDir: string, version: string): ReleaseChanges | undefined {
  const file = path.join(sourceDir, CHANGELOG_FILE);
  if (!existsSync(file)) return undefined;
  const changes = changelogSection(readFileSync(file, "utf8"), version);
  if (!changes)
    throw new PlumError(`${CHANGELOG_FILE} has no section for ${version} and no Unreleased section`, {
      hint: `add \`## [${version}] - YYYY-MM-DD\` with what the release changes (Keep a Changelog), then build again`,
    });
  // Checked before the build, not by the importer after it: a section the manifest cannot carry.
  const checked = releaseChangesSchema.safeParse(changes);
  if (!checked.success)
    throw new PlumError(
      `the ${changes.section} section of ${CHANGELOG_FILE} cannot go into the manifest: ${checked.error.issues.map((i) => i.message).join("; ")}`,
      {
        hint: "shorten it or remove the control characters, then build again",
      },
    );
  return checked.data;
}

export interface ChangeGroup {
  heading?: string;
  items: string[];
}

/**
 * A changelog section as headings and list items of plain text (an item's wrapped lines joined): pages
 * escape them like any other value, so a vendor's Markdown never reaches a browser as HTML.
 */
export function changeGroups(text: string): ChangeGroup[] {
  const groups: ChangeGroup[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading) {
      groups.push({ heading: heading[1], items: [] });
      continue;
    }
    if (groups.length === 0) groups.push({ items: [] });
    const items = groups[groups.length - 1].items;
    const bullet = /^[-*+]\s+(.*)$/.exec(line);
    // An indented line without a bullet continues the item above it.
    if (!bullet && items.length > 0 && /^\s/.test(raw)) items[items.length - 1] += ` ${line}`;
    else items.push(bullet ? bullet[1] : line);
  }
  return groups;
}

/** Which section an admin is reading, in words. */
export function changesNote(version: string, changes: ReleaseChanges): string {
  if (changes.section === version) return `from ${CHANGELOG_FILE}, section ${version}${changes.date ? ` (${changes.date})` : ""}`;
  return `from ${CHANGELOG_FILE}'s Unreleased section: the changelog had no section for ${version} yet`;
}
