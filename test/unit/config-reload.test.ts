import { writeFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { applyConfig, RELOAD_TABLE, reloadRuleFor } from "../../appliance/config-reload.ts";
import { loadConfig } from "../../lib/config.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { testVendorKeys } from "../support/test-bundles.ts";

function leafKeys(node: unknown, prefix = ""): string[] {
  if (node === null || typeof node !== "object") return [prefix];
  return Object.entries(node).flatMap(([k, v]) => leafKeys(v, prefix ? `${prefix}.${k}` : k));
}

/** Applying a changed plum.yaml to a running agent's config: what is live, what waits for a restart. */
describe("config reload (diff, apply live keys, report restart keys)", () => {
  let home: string;
  beforeEach(() => (home = tempHome()));
  afterEach(() => removeHome(home));
  const write = (yaml: string) => writeFileSync(path.join(home, "plum.yaml"), yaml);

  it("applies a newly pinned vendor key in place and reports a changed port as needing a restart, unapplied", () => {
    const live = loadConfig({ PLUM_HOME: home });
    const releases = live.releases; // a section someone holds, as the release store and catalogue do
    const key = testVendorKeys().publicKeyPem;
    write(`http:\n  port: 9123\nreleases:\n  vendorPublicKey: |\n${key.replace(/^/gm, "    ")}\nupgrades:\n  soakSeconds: 5\n`);
    const outcome = applyConfig(live, loadConfig({ PLUM_HOME: home }));
    expect(outcome).to.deep.equal({ applied: ["releases.vendorPublicKey", "upgrades.soakSeconds"], restartNeeded: ["http.port"] });
    expect(releases.vendorPublicKey?.trim()).to.equal(key.trim());
    expect(live.upgrades.soakSeconds).to.equal(5);
    expect(live.http.port, "the proxy still listens on the old port").to.equal(8080);
  });

  it("removes a key taken out of plum.yaml, and reports nothing when nothing changed", () => {
    write("releases:\n  vendorPublicKey: abc\n");
    const live = loadConfig({ PLUM_HOME: home });
    write("releases:\n  keep: 4\n");
    expect(applyConfig(live, loadConfig({ PLUM_HOME: home }))).to.deep.equal({ applied: ["releases.keep", "releases.vendorPublicKey"], restartNeeded: [] });
    expect(live.releases).to.deep.equal({ keep: 4 });
    expect(applyConfig(live, loadConfig({ PLUM_HOME: home }))).to.deep.equal({ applied: [], restartNeeded: [] });
  });

  it("names every key of the configuration in its table, ports, hosts, database, home and runtime as restart keys", () => {
    const all = leafKeys(loadConfig({ PLUM_HOME: home, PLUM_DATABASE_URL: "postgres://u:p@h:5432/postgres", PLUM_BACKUP_SECONDARY: "/srv/b" }));
    const unnamed = all.filter((k) => !Object.keys(RELOAD_TABLE).some((t) => k === t || k.startsWith(`${t}.`)));
    expect(unnamed).to.deep.equal([]);
    for (const key of [
      "http.port",
      "http.host",
      "console.port",
      "console.host",
      "database.url",
      "database.embedded.port",
      "home",
      "instances.stopTimeoutSeconds",
      "log.level",
    ])
      expect(reloadRuleFor(key).takes, key).to.equal("restart");
    for (const key of ["releases.vendorPublicKey", "releases.keep", "upgrades.promotion", "backup.retention.keepDaily", "backup.rpoHours"])
      expect(reloadRuleFor(key).takes, key).to.equal("live");
    expect(reloadRuleFor("some.future.key").takes).to.equal("restart");
  });
});
