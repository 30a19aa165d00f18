import { randomBytes } from "node:crypto";
import { catalogueItemCreator } from "../../product/commands/catalogue-commands.ts";
import { merchantCreator } from "../../product/commands/merchant-commands.ts";
import { pointsAwarder } from "../../product/commands/points-awarder.ts";
import { productUserCreator } from "../../product/commands/product-user-creator.ts";
import { programmeCreator } from "../../product/commands/programme-commands.ts";
import type { ProductRole } from "../../product/models/index.ts";
import type { Participant } from "../../product/models/participant.ts";
import { SYSTEM_ACTOR, type ProductContext } from "../../product/product-context.ts";

/** Valid rows for tests, built through the product's own commands; override what a test cares about. */
const unique = () => randomBytes(4).toString("hex");

export const TEST_PASSWORD = "tests use this one password";

export async function buildProgramme(ctx: ProductContext, overrides: Partial<{ name: string; kind: string; currency: string }> = {}) {
  return programmeCreator({ ctx, actor: SYSTEM_ACTOR, input: { name: `Programme ${unique()}`, kind: "recognition", ...overrides } });
}

export async function buildParticipant(
  ctx: ProductContext,
  overrides: Partial<{ employeeId: string; name: string; email: string; department: string; country: string }> = {},
): Promise<Participant> {
  const u = unique();
  return ctx.models.Participant.create({
    employeeId: `E-${u}`,
    name: `Participant ${u}`,
    email: `p-${u}@example.com`,
    department: "Sales",
    country: "NL",
    ...overrides,
  });
}

export async function buildMerchant(ctx: ProductContext, overrides: Partial<{ name: string }> = {}) {
  return merchantCreator({ ctx, actor: SYSTEM_ACTOR, input: { name: `Merchant ${unique()}`, ...overrides } });
}

export async function buildItem(
  ctx: ProductContext,
  merchantId: number,
  overrides: Partial<{ name: string; pointsCost: number; stock: number; active: boolean }> = {},
) {
  return catalogueItemCreator({ ctx, actor: SYSTEM_ACTOR, input: { merchantId, name: `Item ${unique()}`, pointsCost: 100, stock: 10, ...overrides } });
}

export async function award(ctx: ProductContext, participantId: number, points: number) {
  return pointsAwarder({
    ctx,
    actor: SYSTEM_ACTOR,
    input: { participantId, programmeId: null, kind: points > 0 ? "award" : "adjustment", points, idempotencyKey: `test:${unique()}${unique()}` },
  });
}

/** A product account with TEST_PASSWORD already set (no one-time password to change). */
export async function buildAccount(ctx: ProductContext, role: ProductRole, link: { participantId?: number; merchantId?: number } = {}) {
  return productUserCreator({ ctx, actor: SYSTEM_ACTOR, input: { email: `${role}-${unique()}@example.com`, role, ...link, password: TEST_PASSWORD } });
}
