import { APP_VERSION } from "../../lib/version.ts";
import { check, type CheckResult, type SuiteEnv } from "./suite.ts";

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** The instance is alive, ready (database reachable, schema as expected) and says what it is. */
export async function healthChecks(env: SuiteEnv): Promise<CheckResult[]> {
  const live = await getJson(new URL("/healthz", env.baseUrl).href);
  const ready = await getJson(new URL("/readyz", env.baseUrl).href);
  const version = await getJson(new URL("/version", env.baseUrl).href);
  return [
    check("healthz answers 200", live.status === 200, `status ${live.status}`),
    check(
      "readyz answers 200 (database reachable, schema as this build expects)",
      ready.status === 200,
      `status ${ready.status}: ${JSON.stringify(ready.body)}`,
    ),
    check(
      "version names the product",
      version.body.name === "plum" && typeof version.body.version === "string",
      `version ${String(version.body.version)} (this plumctl: ${APP_VERSION})`,
    ),
  ];
}
