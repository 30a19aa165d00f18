import { expect } from "chai";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseTarListing, unsafeMember, unsafeMembers, type TarMember } from "../../appliance/releases/tar-listing.ts";
import { escapingEntries } from "../../appliance/releases/unpacked-tree.ts";

describe("tar listings of release bundles", () => {
  const listing = [
    "-rw-r--r-- 0/0             560 2026-11-23 11:27 manifest.json",
    "drwxr-xr-x 0/0               0 2026-11-23 11:27 dist/",
    "lrwxrwxrwx 0/0               0 2026-11-23 11:27 node_modules/a/b -> ../c/d",
    "hrw-r--r-- 0/0               0 2026-11-23 11:27 x link to y",
    "crw-r--r-- 0/0             1,3 2026-11-23 11:27 dev/null",
  ].join("\n");

  it("reads type, mode, size, name and link target of each member", () => {
    const { members, unreadable } = parseTarListing(listing + "\n");
    expect(unreadable).to.deep.equal([]);
    expect(members.map((m) => [m.type, m.size, m.name, m.linkTarget])).to.deep.equal([
      ["-", 560, "manifest.json", undefined],
      ["d", 0, "dist/", undefined],
      ["l", 0, "node_modules/a/b", "../c/d"],
      ["h", 0, "x", "y"],
      ["c", 0, "dev/null", undefined],
    ]);
  });

  it("sets aside a line it cannot read, and a symlink whose name hides a second arrow", () => {
    const { unreadable } = parseTarListing("garbage\nlrwxrwxrwx 0/0 0 2026-11-23 11:27 a -> b -> c\n");
    expect(unreadable).to.deep.equal(["garbage", "lrwxrwxrwx 0/0 0 2026-11-23 11:27 a -> b -> c"]);
  });

  it("allows files, folders and symlinks inside the release; refuses everything that could reach outside", () => {
    const member = (type: string, name: string, linkTarget?: string, mode = "rw-r--r--") => unsafeMember({ type, mode, size: 0, name, linkTarget });
    expect(member("-", "dist/bin/cli.js")).to.equal(undefined);
    expect(member("d", "web/static/")).to.equal(undefined);
    expect(member("l", "node_modules/a/b", "../c/d")).to.equal(undefined);
    expect(member("-", "/etc/passwd")).to.equal("an absolute or empty path");
    expect(member("-", "dist/../../x")).to.equal("a `..` component");
    expect(member("-", "a\\nb")).to.equal("an escaped or unprintable character");
    expect(member("l", "evil", "../../outside")).to.equal("a symlink to ../../outside, outside the release");
    expect(member("l", "a/b/evil", "../../..")).to.equal("a symlink to ../../.., outside the release");
    expect(member("l", "evil", "/etc")).to.equal("a symlink to the absolute path /etc");
    expect(member("h", "x", "y")).to.match(/^a member of type "h"/);
    expect(member("c", "dev/null")).to.match(/^a member of type "c"/);
    expect(member("-", "bin/x", undefined, "rwsr-xr-x")).to.equal("mode -rwsr-xr-x (set-id or sticky bit)");
  });

  it("refuses members that only reach outside together: under a symlink member, or a link through another link", () => {
    const file = (name: string): TarMember => ({ type: "-", mode: "rw-r--r--", size: 0, name });
    const link = (name: string, linkTarget: string): TarMember => ({ type: "l", mode: "rwxrwxrwx", size: 0, name, linkTarget });
    const why = (members: TarMember[]) => unsafeMembers(members).map((x) => `${x.member.name}: ${x.why}`);
    expect(why([link("p", "."), link("q", "."), link("p/q/r", "../..")])).to.deep.equal([
      "p/q/r: a path under the symlink p (a member is never unpacked through a link)",
    ]);
    expect(why([file("./lib/x.js"), link("./lib", "dist")])).to.deep.equal([
      "./lib/x.js: a path under the symlink lib (a member is never unpacked through a link)",
    ]);
    expect(why([link("x", "."), link("y", "x/..")])).to.deep.equal(["y: a symlink to x/.. through the symlink x (a link is never followed through another)"]);
    expect(why([link("a/x", ".."), link("a/y", "../a/x/../z")])).to.deep.equal([
      "a/y: a symlink to ../a/x/../z through the symlink a/x (a link is never followed through another)",
    ]);
    expect(why([link("evil", "../etc"), file("ok")])).to.deep.equal(["evil: a symlink to ../etc, outside the release"]);
    // A link to a link (its last step) is fine: that link is checked on its own.
    expect(why([link("node_modules/.bin/a", "../a/cli.js"), link("node_modules/a/cli.js", "bin/cli.js"), link("b", "node_modules/.bin/a")])).to.deep.equal([]);
  });

  it("finds the entries of an unpacked tree that really resolve outside it, whatever the listing said", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "plum-unpacked-"));
    try {
      const tree = path.join(root, "release");
      mkdirSync(path.join(tree, "lib"), { recursive: true });
      writeFileSync(path.join(tree, "lib", "x.js"), "\n");
      symlinkSync("lib/x.js", path.join(tree, "inside"));
      symlinkSync(".", path.join(tree, "p"));
      symlinkSync("p/..", path.join(tree, "up")); // lexically ".", really the parent
      symlinkSync("lib/missing", path.join(tree, "dangling"));
      symlinkSync("../missing", path.join(tree, "lib", "dangling-up"));
      const found = (await escapingEntries(tree)).sort((a, b) => a.rel.localeCompare(b.rel));
      expect(found).to.deep.equal([
        { rel: "lib/dangling-up", leadsTo: "../missing (a symlink to nothing that climbs out of its folder)" },
        { rel: "up", leadsTo: realpathSync.native(root) },
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
