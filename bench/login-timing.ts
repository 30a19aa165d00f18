// How long a failed sign-in takes for a real account and for a name nobody has (issue 11: the answer's timing
// must not tell them apart). Prints medians and their ratio; asserts nothing. Run: npx tsx bench/login-timing.ts
import { sessionOpener } from "../lib/http/auth/session-opener.ts";
import { clientConfig } from "../lib/db/database.ts";
import { openSequelize } from "../lib/db/sequelize.ts";
import { productUserCreator } from "../product/commands/product-user-creator.ts";
import { SYSTEM_ACTOR } from "../product/product-context.ts";
import { benchDatabase, benchProductApp, fmt } from "./support.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const db = await benchDatabase();
const sequelize = openSequelize(clientConfig(db.server, db.database), { poolMax: 5 });
const app = benchProductApp(sequelize, {
  // No lockout during the run: every attempt does the full work of a wrong password.
  security: { loginMaxFailures: 100, loginWindowSeconds: 1, lockoutSeconds: 1, loginRateLimitPerMinute: 1_000_000 },
});
const ctx = app.productContext;
const account = await productUserCreator({
  ctx,
  actor: SYSTEM_ACTOR,
  input: { email: "bench@example.com", role: "manager", password: "bench password long enough" },
});

async function failOnce(username: string): Promise<number> {
  const started = process.hrtime.bigint();
  await sessionOpener({ ctx: ctx.auth, input: { username, password: "wrong password", ip: "127.0.0.1", userAgent: null } }).catch(() => undefined);
  return Number(process.hrtime.bigint() - started) / 1e6;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

await failOnce(account.username); // warm-up: the dummy hash, the pool, the JIT
await failOnce("warm-up-unknown");
const known: number[] = [];
const unknown: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  known.push(await failOnce(account.username));
  unknown.push(await failOnce(`nobody-${i}`));
}
console.log(
  `failed sign-in, median of ${ROUNDS}: real account ${fmt(median(known))} ms, unknown name ${fmt(median(unknown))} ms, ratio ${fmt(median(unknown) / median(known), 2)}`,
);
await sequelize.close();
await db.stop();
