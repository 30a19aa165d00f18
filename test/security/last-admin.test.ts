import { expect } from "chai";
import { QueryTypes } from "sequelize";
import type { Agent } from "../../appliance/agent.ts";
import { SESSION_ENDED } from "../../lib/http/auth/session-auth.ts";
import { consoleUser, signInFirstAdmin, TEST_PASSWORD } from "../support/console-users.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";
import type { WebClient } from "../support/web-client.ts";

const ROUNDS = 25;
const LAST_ADMIN = "this is the last active admin: make another admin first";

/**
 * Two admins, each taking the other's admin role away (or disabling the other) at the same moment, through the
 * console on the real ops database: however the two requests interleave, one admin remains.
 */
describe("security: the last admin under concurrent demotions", function () {
  this.timeout(300_000);
  let agent: Agent;
  let stop: () => Promise<void>;
  let first: WebClient;
  let second: WebClient;
  let ids: { first: number; second: number };
  let tokens: { first: string; second: string };

  const activeAdmins = async () =>
    (
      await agent.sequelize.query<{ username: string }>("select username from ops_users where role = 'admin' and disabled_at is null order by username", {
        type: QueryTypes.SELECT,
      })
    ).map((r) => r.username);

  before(async () => {
    ({ agent, stop } = await startInProcessAgent((config) => (config.security.loginRateLimitPerMinute = 10_000)));
    first = await signInFirstAdmin(agent);
    second = await consoleUser(agent, first, "second-admin", "admin");
    const rows = await agent.sequelize.query<{ id: number; username: string }>("select id, username from ops_users", { type: QueryTypes.SELECT });
    ids = { first: rows.find((r) => r.username === "admin")!.id, second: rows.find((r) => r.username === "second-admin")!.id };
    tokens = { first: await first.csrfFrom("/users"), second: await second.csrfFrom("/users") };
  });
  after(async () => stop?.());

  /**
   * Both admins again, as the test's setup (straight in the database), each signed in: disabling an account
   * closed its sessions, so that one signs in afresh.
   */
  async function ready() {
    await agent.sequelize.query("update ops_users set role = 'admin', disabled_at = null where username in ('admin', 'second-admin')");
    for (const [name, client, username] of [
      ["first", first, "admin"],
      ["second", second, "second-admin"],
    ] as const) {
      if ((await client.get("/users")).status === 200) continue;
      expect((await client.signIn(username, TEST_PASSWORD)).status).to.equal(303);
      tokens[name] = await client.csrfFrom("/users");
    }
  }

  const REFUSALS = [LAST_ADMIN, "You are no longer an active admin", "Your role (operator) may not"];

  /** Who sends which change at once: each admin on the other, or one admin on both. */
  const SCENARIOS = [
    {
      what: "two admins demote each other",
      form: { role: "operator" },
      pairs: [
        ["first", "second"],
        ["second", "first"],
      ],
    },
    {
      what: "two admins disable each other",
      form: { disabled: "true" },
      pairs: [
        ["first", "second"],
        ["second", "first"],
      ],
    },
    {
      what: "one admin demotes both",
      form: { role: "operator" },
      pairs: [
        ["first", "first"],
        ["first", "second"],
      ],
    },
  ] as const;

  for (const { what, form, pairs } of SCENARIOS) {
    it(`${what} at once, ${ROUNDS} times: exactly one change wins, the other is told why, an admin always remains`, async () => {
      const clients = { first: () => first, second: () => second };
      for (let round = 0; round < ROUNDS; round++) {
        await ready();
        const answers = await Promise.all(pairs.map(([by, on]) => clients[by]().post(`/users/${ids[on]}`, form, tokens[by])));
        const remaining = await activeAdmins();
        const said = answers.map((r) => r.status).join(" and ");
        expect(remaining.length, `round ${round}: answers ${said}; active admins left: ${JSON.stringify(remaining)}`).to.equal(1);
        expect(
          answers.filter((r) => r.status === 303),
          `round ${round}: one change wins (${said})`,
        ).to.have.length(1);
        const loser = answers.find((r) => r.status !== 303)!;
        const why = `round ${round}: the loser is told why: ${/data-testid="error-message">([^<]*)</.exec(loser.text)?.[1] ?? /class="error"[^>]*>([^<]*)</.exec(loser.text)?.[1] ?? loser.text.slice(-500)}`;
        // When one admin's disabling lands first, the other's sessions end with it: that form is told its session ended.
        if ("disabled" in form && loser.status === 401) expect(loser.text, why).to.include(SESSION_ENDED);
        else {
          expect(loser.status, `round ${round}`).to.be.oneOf([400, 403]);
          expect(
            REFUSALS.some((t) => loser.text.includes(t)),
            why,
          ).to.equal(true);
        }
      }
    });
  }

  it("a form posted from a session an admin ended (the account disabled) is told the session ended, not that the form expired", async () => {
    await ready();
    const disabled = await first.post(`/users/${ids.second}`, { disabled: "true" }, tokens.first);
    expect(disabled.status).to.equal(303);
    const late = await second.post(`/users/${ids.first}`, { role: "operator" }, tokens.second);
    expect(late.status).to.equal(401);
    expect(late.text).to.include(SESSION_ENDED);
    expect(late.text).to.not.include("This form has expired");
    expect(await activeAdmins()).to.deep.equal(["admin"]);
    // Signed out: a page sends it to the sign-in form, and a form with no token at all is still a CSRF refusal.
    const page = await second.get("/users");
    expect(page.status).to.equal(303);
    expect(page.headers.location).to.equal("/login?next=%2Fusers");
    const tokenless = await second.post(`/users/${ids.first}`, { role: "operator" }, "");
    expect(tokenless.status).to.equal(403);
    expect(tokenless.text).to.include("This form has expired or did not come from this site");
  });
});
