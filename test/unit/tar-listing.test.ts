import { expect } from "chai";
import { parseTarListing, unsafeMember } from "../../appliance/releases/tar-listing.ts";

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
});
