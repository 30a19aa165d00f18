import { existsSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { connectionUrl } from "../../lib/db/database.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { testServer } from "../support/databases.ts";
import { plumctl } from "../support/plumctl.ts";
import { freePort } from "../support/ports.ts";
import { RunningAppliance } from "../support/running-appliance.ts";

describe("the client's own PostgreSQL (PLUM_DATABASE_URL)", function () {
  this.timeout(180_000);
  let home: string;
  beforeEach(() => (home = tempHome()));
  afterEach(() => removeHome(home));

  it("runs on it, creates its databases there, and embeds no PostgreSQL", async () => {
    // Empty databases, as a client's DBA hands them over: the agent migrates them itself.
    const appliance = await RunningAppliance.start({ migrated: false });
    try {
      expect(appliance.agent.output()).to.match(/database:\s+external PostgreSQL 15\.\d+ at 127\.0\.0\.1:/);
      expect((await fetch(`${appliance.agent.proxyUrl}/readyz`)).status).to.equal(200);
      expect(existsSync(path.join(appliance.home, "pgdata"))).to.equal(false);
    } finally {
      await appliance.stop();
    }
  });

  it("stops with a clear error when the server cannot be reached", async () => {
    const port = await freePort();
    const res = await plumctl(["agent"], {
      PLUM_HOME: home,
      PLUM_HTTP_PORT: "0",
      PLUM_CONSOLE_PORT: "0",
      PLUM_DATABASE_URL: `postgres://plum:secret@127.0.0.1:${port}/postgres`,
    });
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include(`error: cannot reach PostgreSQL at 127.0.0.1:${port}: connect ECONNREFUSED`);
    expect(res.stderr).to.include("hint: check database.url / PLUM_DATABASE_URL");
    expect(res.stderr + res.stdout, "the password stays out of the output").not.to.include("secret");
  });

  it("stops with a clear error when the password is wrong", async () => {
    const server = testServer();
    const res = await plumctl(["agent"], {
      PLUM_HOME: home,
      PLUM_HTTP_PORT: "0",
      PLUM_CONSOLE_PORT: "0",
      PLUM_DATABASE_URL: connectionUrl({ ...server, password: "not-the-password" }, "postgres"),
    });
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include("password authentication failed");
    expect(res.stderr).to.include("hint: check the user and password in database.url / PLUM_DATABASE_URL");
  });
});
