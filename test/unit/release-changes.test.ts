import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { manifestBytes, parseManifest, type BundleManifest } from "../../appliance/releases/bundle-manifest.ts";
import { changeGroups, changelogSection, changesNote, releaseChangesIn } from "../../appliance/releases/release-changes.ts";
import type { ReleaseInfo } from "../../appliance/releases/release-store.ts";
import { releaseDetail, releaseList } from "../../cli/release-format.ts";

// The 1.2.0 section as written, wrapped item and all.
const SECTION_1_2_0 = [
  "### Added",
  "",
  "- Gift cards: a voucher with a balance,",
  "  spent over several visits.",
  "- Payout export as XLSX.",
  "",
  "### Fixed",
  "",
  "- A merchant key rotation ends the old key at once.",
].join("\n");

const CHANGELOG = [
  "# Changelog",
  "",
  "All notable changes.",
  "",
  "## [Unreleased]",
  "",
  "### Added",
  "",
  "- Dark mode on the storefront.",
  "",
  "## [1.2.0] - 2026-12-01",
  "",
  SECTION_1_2_0,
  "",
  "## [1.1.0] - 2026-11-01",
  "",
  "- Loyalty programmes.",
  "",
  "[unreleased]: https://example.com/compare/v1.2.0...HEAD",
  "[1.2.0]: https://example.com/compare/v1.1.0...v1.2.0",
].join("\n");

function manifest(overrides: Partial<BundleManifest> = {}): BundleManifest {
  return {
    format: 1,
    name: "plum",
    version: "1.2.0",
    schemaVersion: "1733000000000_gift-cards",
    minimumVersion: "1.1.0",
    createdAt: "2026-12-01T10:00:00.000Z",
    artefacts: [{ name: "app.tgz", sha256: "a".repeat(64), bytes: 1 }],
    suites: ["health"],
    migrations: ["1733000000000_gift-cards"],
    ...overrides,
  };
}

describe("release changes from CHANGELOG.md", () => {
  it("takes the release's own section with its date, up to the next release, without link definitions", () => {
    expect(changelogSection(CHANGELOG, "1.2.0")).to.deep.equal({
      section: "1.2.0",
      date: "2026-12-01",
      text: SECTION_1_2_0,
    });
    expect(changelogSection(CHANGELOG, "1.1.0")).to.deep.equal({ section: "1.1.0", date: "2026-11-01", text: "- Loyalty programmes." });
  });

  it("falls back to the Unreleased section, saying so, when the version has none; nothing when neither exists", () => {
    const changes = changelogSection(CHANGELOG, "1.3.0")!;
    expect(changes).to.deep.equal({ section: "Unreleased", text: "### Added\n\n- Dark mode on the storefront." });
    expect(changesNote("1.3.0", changes)).to.equal("from CHANGELOG.md's Unreleased section: the changelog had no section for 1.3.0 yet");
    expect(changesNote("1.2.0", changelogSection(CHANGELOG, "1.2.0")!)).to.equal("from CHANGELOG.md, section 1.2.0 (2026-12-01)");
    expect(changelogSection("# Changelog\n\n## [1.0.0] - 2026-10-01\n\n- First.\n", "1.3.0")).to.equal(undefined);
  });

  it("reads a changelog written with CRLF line ends and headings without brackets", () => {
    expect(changelogSection("## 2.0.0 - 2027-01-05\r\n\r\n- Windows line ends.\r\n", "2.0.0")).to.deep.equal({
      section: "2.0.0",
      date: "2027-01-05",
      text: "- Windows line ends.",
    });
  });

  it("reads a section as headings and items, joining an item's wrapped lines", () => {
    expect(changeGroups(changelogSection(CHANGELOG, "1.2.0")!.text)).to.deep.equal([
      { heading: "Added", items: ["Gift cards: a voucher with a balance, spent over several visits.", "Payout export as XLSX."] },
      { heading: "Fixed", items: ["A merchant key rotation ends the old key at once."] },
    ]);
    expect(changeGroups("Plain words first.\n- then an item")).to.deep.equal([{ items: ["Plain words first.", "then an item"] }]);
  });

  describe("in a source tree", () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), "plum-changelog-"))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("gives nothing for a tree without a changelog, and refuses one without a usable section", () => {
      expect(releaseChangesIn(dir, "1.2.0")).to.equal(undefined);
      writeFileSync(path.join(dir, "CHANGELOG.md"), "# Changelog\n\n## [1.0.0] - 2026-10-01\n\n- First.\n");
      expect(() => releaseChangesIn(dir, "1.2.0")).to.throw("CHANGELOG.md has no section for 1.2.0 and no Unreleased section");
      writeFileSync(path.join(dir, "CHANGELOG.md"), "## [1.2.0] - 2026-12-01\n\n- Colour \u001b[31mred\u001b[0m.\n");
      expect(() => releaseChangesIn(dir, "1.2.0")).to.throw(
        "the 1.2.0 section of CHANGELOG.md cannot go into the manifest: holds control characters (only text, tabs and line feeds)",
      );
      writeFileSync(path.join(dir, "CHANGELOG.md"), CHANGELOG);
      expect(releaseChangesIn(dir, "1.2.0")).to.deep.equal(changelogSection(CHANGELOG, "1.2.0"));
    });
  });

  describe("in the manifest", () => {
    it("is optional, so a bundle built before changelogs imports", () => {
      expect(parseManifest(manifestBytes(manifest()))).to.deep.equal({ manifest: manifest() });
      const changes = { section: "Unreleased" as const, text: "- Dark mode." };
      expect(parseManifest(manifestBytes(manifest({ changes })))).to.deep.equal({ manifest: manifest({ changes }) });
    });

    it("is validated like the rest: a known section, a date, plain text, no other keys", () => {
      const problems = (changes: unknown) => {
        const parsed = parseManifest(Buffer.from(JSON.stringify({ ...manifest(), changes })));
        return "problems" in parsed ? parsed.problems : [];
      };
      expect(problems({ section: "latest", text: "x" })).to.have.length(1);
      expect(problems({ section: "1.2.0", date: "1 Dec", text: "x" })).to.deep.equal(["changes.date: Invalid ISO date"]);
      expect(problems({ section: "1.2.0", text: "\u001b]8;;https://evil.example\u0007click" })).to.deep.equal([
        "changes.text: holds control characters (only text, tabs and line feeds)",
      ]);
      expect(problems({ section: "1.2.0", text: "x".repeat(64 * 1024 + 1) })).to.have.length(1);
      expect(problems({ section: "1.2.0", text: "x", html: "<b>x</b>" })).to.deep.equal(['changes: Unrecognized key: "html"']);
    });
  });

  describe("printed by plumctl release list and show", () => {
    const release = (m: BundleManifest, installed = false): ReleaseInfo => ({
      version: m.version,
      manifest: m,
      dir: `/releases/${m.version}`,
      importedAt: installed ? null : new Date("2026-12-02T09:00:00.000Z"),
      installed,
    });
    const newer = release(manifest({ version: "1.3.0", changes: changelogSection(CHANGELOG, "1.3.0") }));
    const current = release(manifest({ changes: changelogSection(CHANGELOG, "1.2.0") }));
    const old = release(manifest({ version: "1.1.0", minimumVersion: "1.1.0" }), true);

    it("lists the table, then each release's first items under the note saying which section they are", () => {
      const many = release(manifest({ version: "1.4.0", changes: { section: "1.4.0", text: "- a\n- b\n- c\n- d\n- e" } }));
      expect(releaseList([many, newer, current, old])).to.equal(
        [
          "VERSION  SCHEMA                    UPGRADES FROM  IMPORTED",
          "1.4.0    1733000000000_gift-cards  1.1.0          2026-12-02T09:00:00.000Z",
          "1.3.0    1733000000000_gift-cards  1.1.0          2026-12-02T09:00:00.000Z",
          "1.2.0    1733000000000_gift-cards  1.1.0          2026-12-02T09:00:00.000Z",
          "1.1.0    1733000000000_gift-cards  -              installed",
          "",
          "1.4.0: from CHANGELOG.md, section 1.4.0",
          "  - a",
          "  - b",
          "  - c",
          "  … 2 more: `plumctl release show 1.4.0`",
          "",
          "1.3.0: from CHANGELOG.md's Unreleased section: the changelog had no section for 1.3.0 yet",
          "  - Added: Dark mode on the storefront.",
          "",
          "1.2.0: from CHANGELOG.md, section 1.2.0 (2026-12-01)",
          "  - Added: Gift cards: a voucher with a balance, spent over several visits.",
          "  - Added: Payout export as XLSX.",
          "  - Fixed: A merchant key rotation ends the old key at once.",
          "",
          "1.1.0: no changelog came with this release",
          "",
        ].join("\n"),
      );
    });

    it("prints whole sections with --changes and in release show", () => {
      const whole = [
        "1.2.0: from CHANGELOG.md, section 1.2.0 (2026-12-01)",
        "  ### Added",
        "",
        "  - Gift cards: a voucher with a balance,",
        "    spent over several visits.",
        "  - Payout export as XLSX.",
        "",
        "  ### Fixed",
        "",
        "  - A merchant key rotation ends the old key at once.",
        "",
      ].join("\n");
      expect(releaseList([current], { changes: true })).to.include(`\n\n${whole}`);
      expect(releaseDetail(current)).to.equal(
        [
          "release        1.2.0 (imported 2026-12-02T09:00:00.000Z)",
          "schema         1733000000000_gift-cards",
          "upgrades from  1.1.0",
          "suites         health",
          "migrations     1",
          "created        2026-12-01T10:00:00.000Z",
          "",
          whole,
        ].join("\n"),
      );
    });
  });
});
