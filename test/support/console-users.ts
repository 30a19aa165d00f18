import { expect } from "chai";
import type { Agent } from "../../appliance/agent.ts";
import { WebClient } from "./web-client.ts";

/** The password test users choose at their first sign-in. */
export const TEST_PASSWORD = "violet tram window lantern";

/** The agent's first admin, signed in with the one-time password, which is then replaced. */
export async function signInFirstAdmin(agent: Agent): Promise<WebClient> {
  const admin = new WebClient(agent.consoleApp);
  expect((await admin.signIn("admin", agent.firstAdmin!.oneTimePassword)).status).to.equal(303);
  expect((await admin.changePassword(agent.firstAdmin!.oneTimePassword, TEST_PASSWORD)).status).to.equal(303);
  return admin;
}

/** A console user created by the admin through the console, signed in with their own password. */
export async function consoleUser(agent: Agent, admin: WebClient, username: string, role: "admin" | "operator" | "auditor"): Promise<WebClient> {
  const created = await admin.post("/users", { username, role }, await admin.csrfFrom("/users"));
  expect(created.status, created.text).to.equal(201);
  const oneTime = /data-testid="one-time-password"><code>([^<]+)</.exec(created.text)![1];
  const client = new WebClient(agent.consoleApp);
  expect((await client.signIn(username, oneTime)).headers.location).to.equal("/account/password");
  expect((await client.changePassword(oneTime, TEST_PASSWORD)).status).to.equal(303);
  return client;
}
