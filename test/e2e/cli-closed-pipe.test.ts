import { readFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { runChild } from "../../lib/child-process.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { compiledPlumctl } from "../support/compiled-plumctl.ts";
import { freshDatabases, type FreshDatabases } from "../support/databases.ts";
import { opsRows } from "../support/ops-rows.ts";

const SETS = 3000; // ~270 KB of `backup list`: far more than a pipe holds, so plumctl is still writing when the reader is gone

/**
 * A reader that stops early closes the pipe under plumctl: every command ends quietly, its work done, exit 0
 * (as `git log | head -1` does: under `set -o pipefail` a reader that had enough is no failure).
 */
describe("plumctl with a reader that closes the pipe early", function () {
  this.timeout(300_000);
  let home: string;
  let dbs: FreshDatabases;
  let env: Record<string, string>;

  before(async () => {
    home = tempHome();
    dbs = await freshDatabases({ migrated: true });
    env = { ...process.env, ...dbs.env, PLUM_HOME: home, PLUMCTL: await compiledPlumctl(), NODE: process.execPath, STDERR_FILE: path.join(home, "stderr") };
    await opsRows(
      dbs,
      `insert into backup_sets (id, kind, status, started_at, finished_at, app_version, schema_version, started_by)
       select to_char(timestamptz '2026-01-01' + g * interval '1 minute', 'YYYYMMDD"T"HH24MISS') || '-' || lpad(to_hex(g), 6, '0'), 'scheduled', 'succeeded',
              timestamptz '2026-01-01' + g * interval '1 minute', timestamptz '2026-01-01' + g * interval '1 minute' + interval '5 seconds', '0.1.0', 'none', 'scheduler'
         from generate_series(1, ${SETS}) g`,
    );
  });
  after(async () => {
    await dbs?.drop();
    removeHome(home);
  });

  /** Run `plumctl ARGS | READER` in bash, as an admin's shell does: what the reader printed, plumctl's exit status, its stderr. */
  async function piped(args: string, reader: string): Promise<{ read: string; status: number; stderr: string }> {
    const { stdout } = await runChild(
      ["bash", "-c", `set -o pipefail; "$NODE" "$PLUMCTL" ${args} 2>"$STDERR_FILE" | ${reader}; status=\${PIPESTATUS[0]}; echo; echo "plumctl exited $status"`],
      {
        env,
        timeoutMs: 120_000,
      },
    );
    const lines = stdout.trimEnd().split("\n");
    const status = /^plumctl exited (\d+)$/.exec(lines.pop()!)?.[1];
    return { read: lines.join("\n").trimEnd(), status: Number(status), stderr: readFileSync(env.STDERR_FILE, "utf8") };
  }

  it("`plumctl backup list | head -1`: the first line, then a quiet exit 0", async () => {
    const res = await piped("backup list", "head -1");
    expect(res.stderr).to.equal("");
    expect(res.status).to.equal(0);
    expect(res.read).to.match(/^\d{8}T\d{6}-[0-9a-f]{6} {2}scheduled {4}succeeded /);
    expect(res.read.split("\n")).to.have.length(1);
  });

  it("`plumctl backup list --json | head -c 100`: one large write cut short, the same quiet exit", async () => {
    const res = await piped("backup list --json", "head -c 100");
    expect(res.stderr).to.equal("");
    expect(res.status).to.equal(0);
    expect(res.read).to.match(/^\[\n {2}\{\n/);
  });

  it("`plumctl backup recovery-kit | true`: a reader gone before the first write; the printing is still audited", async () => {
    const res = await piped("backup recovery-kit", "true");
    expect(res.stderr).to.equal("");
    expect(res.status).to.equal(0);
    const audited = await opsRows<{ actor: string }>(dbs, "select actor from audit_log where action = 'backup.recovery-kit'");
    expect(audited).to.deep.equal([{ actor: "cli" }]);
  });
});
