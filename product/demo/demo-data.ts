import { randomBytes } from "node:crypto";
import type { Sequelize, Transaction } from "sequelize";
import { hashPassword, oneTimePassword } from "../../lib/http/auth/passwords.ts";
import { hashApiKey } from "../commands/merchant-commands.ts";
import { payoutRunApprover } from "../commands/payout-run-approver.ts";
import { payoutRunComputer } from "../commands/payout-run-computer.ts";
import { payoutRuleSaver } from "../commands/payout-rule-saver.ts";
import { payoutSalesImporter } from "../commands/payout-sales-importer.ts";
import { GOLDEN_TERMS } from "../payouts/golden-cases.ts";
import { SYSTEM_ACTOR } from "../product-context.ts";
import { standaloneContext } from "../standalone-context.ts";
import { newShareToken, newVoucherCode } from "../voucher-codes.ts";

const FIRST = [
  "Ana",
  "Ben",
  "Chloé",
  "Daan",
  "Elif",
  "Farid",
  "Grace",
  "Hugo",
  "Ines",
  "Jonas",
  "Kaito",
  "Lena",
  "Mateo",
  "Nora",
  "Omar",
  "Priya",
  "Quinn",
  "Rosa",
  "Sven",
  "Tara",
  "Umar",
  "Vera",
  "Wen",
  "Ximena",
  "Yusuf",
  "Zoë",
];
const LAST = [
  "Andersen",
  "Bakker",
  "Costa",
  "Dubois",
  "Eriksen",
  "Fischer",
  "García",
  "Hansen",
  "Ivanova",
  "Jansen",
  "Kowalski",
  "Larsen",
  "Moreau",
  "Novak",
  "Okafor",
  "Peeters",
  "Rossi",
  "Schmidt",
  "Tanaka",
  "Usman",
  "Visser",
  "Weber",
  "Yilmaz",
  "Zhang",
];
const DEPARTMENTS = ["Sales", "Support", "Engineering", "Finance", "Operations", "Marketing", "People", "Logistics"];
const COUNTRIES = ["NL", "DE", "FR", "BE", "ES", "IT", "GB", "SE", "PL", "PT"];
const GOODS = [
  "Cinema ticket",
  "Coffee voucher",
  "Book token",
  "Spa day",
  "Dinner for two",
  "Headphones",
  "Train ticket",
  "Plant box",
  "Museum pass",
  "Cooking class",
];
const BATCH = 5000;

/** A small deterministic generator, so the same seed gives the same dataset. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DemoSummary {
  payouts: { programmeId: number; period: string; participants: number; runId: number };
  tag: string;
  programmes: number;
  participants: number;
  merchants: number;
  items: number;
  ledgerEntries: number;
  vouchers: number;
  vouchersRedeemed: number;
  manager: { username: string; oneTimePassword: string };
  seconds: number;
}

async function insertRows(
  sequelize: Sequelize,
  transaction: Transaction,
  table: string,
  columns: Array<[string, string]>,
  rows: unknown[][],
): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < rows.length; i += BATCH) {
    const batch = rows.slice(i, i + BATCH);
    const bind = columns.map((_, c) => batch.map((r) => r[c]));
    const [result] = await sequelize.query(
      `insert into ${table} (${columns.map(([name]) => name).join(", ")}) select * from unnest(${columns.map(([, type], c) => `$${c + 1}::${type}[]`).join(", ")}) returning id`,
      { bind, transaction },
    );
    ids.push(...(result as Array<{ id: string | number }>).map((r) => Number(r.id)));
  }
  return ids;
}

/**
 * Fill the product with a realistic dataset: programmes, `participants` people with ledger history, merchants
 * and a catalogue, vouchers redeemed and not. Batched inserts in one transaction; all consistent with the
 * ledger rules (no negative balance, every voucher paid by one redemption entry).
 */
export async function demoDataLoader(sequelize: Sequelize, opts: { participants: number; seed?: number; log?: (line: string) => void }): Promise<DemoSummary> {
  const started = Date.now();
  const core = await coreDataLoader(sequelize, opts);
  const payouts = await demoPayouts(sequelize, core.salesProgrammeId, core.salesParticipants, opts.seed ?? 42);
  opts.log?.(`payouts: run ${payouts.runId} for ${payouts.period}, ${payouts.participants} participants, approved`);
  const { salesProgrammeId: _p, salesParticipants: _s, ...summary } = core;
  return { ...summary, payouts, seconds: (Date.now() - started) / 1000 };
}

const SALES_PEOPLE = 2000; // sales records for at most this many participants: enough to show tiers and the cap

/**
 * A payout rule (the golden terms), one month of sales for the sales-incentive programme, and its run
 * computed and approved through the product's own commands: what the payouts suite recomputes.
 */
async function demoPayouts(sequelize: Sequelize, programmeId: number, employeeIds: string[], seed: number) {
  const ctx = standaloneContext(sequelize);
  const random = rng(seed + 1);
  const now = new Date();
  const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  const period = `${last.getUTCFullYear()}-${String(last.getUTCMonth() + 1).padStart(2, "0")}`;
  await payoutRuleSaver({ ctx, actor: SYSTEM_ACTOR, input: { programmeId, effectiveFrom: period, ...GOLDEN_TERMS } });
  const people = employeeIds.slice(0, SALES_PEOPLE);
  const csv = ["employee_id,period,quota,sales", ...people.map((id) => `${id},${period},1000000,${Math.floor(random() * 1_800_000)}`)].join("\n");
  await payoutSalesImporter({ ctx, actor: SYSTEM_ACTOR, input: { programmeId, csv } });
  const run = await payoutRunComputer({ ctx, actor: SYSTEM_ACTOR, input: { programmeId, period } });
  await payoutRunApprover({ ctx, actor: SYSTEM_ACTOR, input: { runId: run.id } });
  return { programmeId, period, participants: people.length, runId: run.id };
}

async function coreDataLoader(sequelize: Sequelize, opts: { participants: number; seed?: number; log?: (line: string) => void }) {
  const random = rng(opts.seed ?? 42);
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
  const tag = randomBytes(3).toString("hex");
  const log = opts.log ?? (() => undefined);
  const managerPassword = oneTimePassword();

  return sequelize.transaction(async (transaction) => {
    const programmeIds = await insertRows(
      sequelize,
      transaction,
      "programmes",
      [
        ["name", "text"],
        ["kind", "text"],
        ["description", "text"],
        ["currency", "text"],
      ],
      [
        [`Thank-you points ${tag}`, "recognition", "Peer-to-peer recognition", "EUR"],
        [`Quarterly sales incentive ${tag}`, "sales_incentive", "Quota-attainment tiers with an accelerator", "EUR"],
        [`Customer club ${tag}`, "loyalty", "Points for loyal customers", "EUR"],
      ],
    );
    log(`programmes: ${programmeIds.length}`);

    const people: unknown[][] = [];
    for (let n = 1; n <= opts.participants; n++) {
      const first = pick(FIRST);
      const last = pick(LAST);
      const employeeId = `D${tag}-${String(n).padStart(7, "0")}`;
      const manager = n % 10 === 1 ? null : `D${tag}-${String(n - (n % 10) + 1).padStart(7, "0")}`;
      people.push([
        employeeId,
        `${first} ${last}`,
        `${first}.${last}.${n}.${tag}@example.com`
          .toLowerCase()
          .normalize("NFD")
          .replace(/[\u0300-\u036f]/g, ""),
        pick(DEPARTMENTS),
        manager,
        pick(COUNTRIES),
      ]);
    }
    const participantIds = await insertRows(
      sequelize,
      transaction,
      "participants",
      [
        ["employee_id", "text"],
        ["name", "text"],
        ["email", "text"],
        ["department", "text"],
        ["manager_employee_id", "text"],
        ["country", "text"],
      ],
      people,
    );
    log(`participants: ${participantIds.length}`);

    const merchantCount = Math.max(3, Math.min(50, Math.ceil(opts.participants / 2000)));
    const merchants: unknown[][] = [];
    for (let m = 1; m <= merchantCount; m++)
      merchants.push([`Merchant ${m} ${tag}`, `shop${m}@example.com`, hashApiKey(`pk_${randomBytes(30).toString("base64url")}`), `pk_demo${m}`]);
    const merchantIds = await insertRows(
      sequelize,
      transaction,
      "merchants",
      [
        ["name", "text"],
        ["contact_email", "text"],
        ["api_key_hash", "text"],
        ["api_key_prefix", "text"],
      ],
      merchants,
    );
    const items: unknown[][] = [];
    for (const merchantId of merchantIds)
      for (const good of GOODS)
        items.push([merchantId, `${good}`, `${good} at merchant ${merchantId}`, 50 + Math.floor(random() * 20) * 25, 1000 + Math.floor(random() * 5000)]);
    const itemIds = await insertRows(
      sequelize,
      transaction,
      "catalogue_items",
      [
        ["merchant_id", "int"],
        ["name", "text"],
        ["description", "text"],
        ["points_cost", "int"],
        ["stock", "int"],
      ],
      items,
    );
    log(`merchants: ${merchantIds.length}, items: ${itemIds.length}`);

    // Awards: 1–4 per participant; then about a third of participants redeem one item they can afford.
    const awards: unknown[][] = [];
    const balance = new Map<number, number>();
    let key = 0;
    for (const pid of participantIds) {
      const count = 1 + Math.floor(random() * 4);
      for (let a = 0; a < count; a++) {
        const points = 50 + Math.floor(random() * 40) * 10;
        balance.set(pid, (balance.get(pid) ?? 0) + points);
        awards.push([pid, pick(programmeIds), "award", points, `demo:${tag}:${++key}`, "demo award", "demo-data"]);
      }
    }
    const ledgerColumns: Array<[string, string]> = [
      ["participant_id", "int"],
      ["programme_id", "int"],
      ["kind", "text"],
      ["points", "int"],
      ["idempotency_key", "text"],
      ["note", "text"],
      ["created_by", "text"],
    ];
    await insertRows(sequelize, transaction, "ledger_entries", ledgerColumns, awards);
    log(`awards: ${awards.length}`);

    const vouchers: unknown[][] = [];
    const buyers: Array<{ pid: number; cost: number; item: number }> = [];
    const now = Date.now();
    for (const pid of participantIds) {
      if (random() > 0.33) continue;
      const i = Math.floor(random() * itemIds.length);
      const cost = items[i][3] as number;
      if ((balance.get(pid) ?? 0) < cost) continue;
      const redeemed = random() < 0.5;
      const issued = new Date(now - Math.floor(random() * 90) * 86400_000);
      vouchers.push([
        pid,
        itemIds[i],
        items[i][0],
        cost,
        newVoucherCode(),
        newShareToken(),
        redeemed ? "redeemed" : "issued",
        issued.toISOString(),
        new Date(issued.getTime() + 180 * 86400_000).toISOString(),
        redeemed ? new Date(issued.getTime() + 86400_000).toISOString() : null,
        redeemed ? items[i][0] : null,
      ]);
      buyers.push({ pid, cost, item: itemIds[i] });
    }
    const voucherIds = await insertRows(
      sequelize,
      transaction,
      "vouchers",
      [
        ["participant_id", "int"],
        ["item_id", "int"],
        ["merchant_id", "int"],
        ["points_cost", "int"],
        ["code", "text"],
        ["share_token", "text"],
        ["status", "text"],
        ["issued_at", "timestamptz"],
        ["expires_at", "timestamptz"],
        ["redeemed_at", "timestamptz"],
        ["redeemed_by_merchant_id", "int"],
      ],
      vouchers,
    );
    const redemptions = buyers.map((b, n) => [b.pid, null, "redemption", -b.cost, `demo:${tag}:r${n}`, "demo redemption", "demo-data", voucherIds[n]]);
    await insertRows(sequelize, transaction, "ledger_entries", [...ledgerColumns, ["voucher_id", "int"]], redemptions);
    await sequelize.query(
      "update catalogue_items c set stock = c.stock - v.n from (select item_id, count(*) as n from vouchers where item_id = any($1::int[]) group by item_id) v where v.item_id = c.id",
      { bind: [itemIds], transaction },
    );
    log(`vouchers: ${voucherIds.length}`);

    const managerName = `manager-${tag}@example.com`;
    await sequelize.query("insert into product_users (username, role, password_hash, must_change_password) values ($1, 'manager', $2, true)", {
      bind: [managerName, await hashPassword(managerPassword)],
      transaction,
    });
    await sequelize.query("insert into product_events (actor, action, detail) values ('demo-data', 'demo-data.load', $1)", {
      bind: [JSON.stringify({ tag, participants: participantIds.length })],
      transaction,
    });
    return {
      tag,
      salesProgrammeId: programmeIds[1],
      salesParticipants: people.filter((p) => p[3] === "Sales").map((p) => p[0] as string),
      programmes: programmeIds.length,
      participants: participantIds.length,
      merchants: merchantIds.length,
      items: itemIds.length,
      ledgerEntries: awards.length + redemptions.length,
      vouchers: voucherIds.length,
      vouchersRedeemed: vouchers.filter((v) => v[6] === "redeemed").length,
      manager: { username: managerName, oneTimePassword: managerPassword },
    };
  });
}
