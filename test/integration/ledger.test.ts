import { randomUUID } from "node:crypto";
import { expect } from "chai";
import type { Express } from "express";
import { itemRedeemer } from "../../product/commands/item-redeemer.ts";
import { balanceOf } from "../../product/commands/ledger.ts";
import { pointsAwarder } from "../../product/commands/points-awarder.ts";
import { HttpError } from "../../lib/http/http-errors.ts";
import { SYSTEM_ACTOR, type ProductContext } from "../../product/product-context.ts";
import { award, buildAccount, buildItem, buildMerchant, buildParticipant, TEST_PASSWORD } from "../support/factories.ts";
import { startProductApp } from "../support/product-app.ts";
import { WebClient } from "../support/web-client.ts";

describe("points ledger", () => {
  let app: Express;
  let ctx: ProductContext;
  let stop: () => Promise<void>;
  before(async () => ({ app, ctx, stop } = await startProductApp()));
  after(() => stop());

  const participantActor = { id: -1, username: "tester", role: "participant" };

  it("concurrent redemptions that would overdraw a balance: exactly the affordable ones succeed", async () => {
    const p = await buildParticipant(ctx);
    await award(ctx, p.id, 250);
    const { merchant } = await buildMerchant(ctx);
    const item = await buildItem(ctx, merchant.id, { pointsCost: 100, stock: 10 });
    const attempts = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        itemRedeemer({ ctx, actor: participantActor, input: { participantId: p.id, itemId: item.id, requestKey: randomUUID() } }),
      ),
    );
    const ok = attempts.filter((a) => a.status === "fulfilled");
    const refused = attempts.filter((a): a is PromiseRejectedResult => a.status === "rejected");
    expect(ok).to.have.length(2);
    expect(refused).to.have.length(8);
    for (const r of refused) {
      expect(r.reason).to.be.instanceOf(HttpError);
      expect((r.reason as HttpError).status).to.equal(409);
      expect((r.reason as Error).message).to.match(/^Not enough points: .* costs 100 points and your balance is 50\.$/);
    }
    expect(await balanceOf(ctx, p.id)).to.equal(50);
    await item.reload();
    expect(item.stock).to.equal(8);
    expect(await ctx.models.Voucher.count({ where: { participantId: p.id } })).to.equal(2);
  });

  it("never sells stock it does not have, also under concurrency", async () => {
    const { merchant } = await buildMerchant(ctx);
    const item = await buildItem(ctx, merchant.id, { pointsCost: 10, stock: 3 });
    const buyers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const p = await buildParticipant(ctx);
        await award(ctx, p.id, 100);
        return p;
      }),
    );
    const results = await Promise.allSettled(
      buyers.map((p) => itemRedeemer({ ctx, actor: participantActor, input: { participantId: p.id, itemId: item.id, requestKey: randomUUID() } })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).to.have.length(3);
    for (const r of results.filter((x): x is PromiseRejectedResult => x.status === "rejected"))
      expect((r.reason as Error).message).to.match(/is out of stock\.$/);
    await item.reload();
    expect(item.stock).to.equal(0);
  });

  it("gives back the first voucher when the same redemption request arrives twice", async () => {
    const p = await buildParticipant(ctx);
    await award(ctx, p.id, 300);
    const { merchant } = await buildMerchant(ctx);
    const item = await buildItem(ctx, merchant.id, { pointsCost: 100 });
    const requestKey = randomUUID();
    const [a, b] = await Promise.all(
      [1, 2].map(() => itemRedeemer({ ctx, actor: participantActor, input: { participantId: p.id, itemId: item.id, requestKey } })),
    );
    expect(a.voucher.id).to.equal(b.voucher.id);
    expect([a.replayed, b.replayed].sort()).to.deep.equal([false, true]);
    expect(await balanceOf(ctx, p.id)).to.equal(200);
  });

  it("makes awards idempotent: a replay returns the first entry, a different entry under the same key is refused", async () => {
    const p = await buildParticipant(ctx);
    const input = { participantId: p.id, programmeId: null, kind: "award" as const, points: 40, idempotencyKey: "payroll-2026-11-batch-7" };
    const first = await pointsAwarder({ ctx, actor: SYSTEM_ACTOR, input });
    const again = await pointsAwarder({ ctx, actor: SYSTEM_ACTOR, input });
    expect(again.replayed).to.equal(true);
    expect(again.entry.id).to.equal(first.entry.id);
    expect(await balanceOf(ctx, p.id)).to.equal(40);
    const other = await pointsAwarder({ ctx, actor: SYSTEM_ACTOR, input: { ...input, points: 41 } }).catch((e: HttpError) => e);
    expect((other as HttpError).status).to.equal(409);
    expect((other as HttpError).message).to.equal(`The idempotency key "payroll-2026-11-batch-7" was already used for a different entry (#${first.entry.id}).`);
  });

  it("refuses an adjustment that would make a balance negative", async () => {
    const p = await buildParticipant(ctx);
    await award(ctx, p.id, 30);
    const err = await pointsAwarder({
      ctx,
      actor: SYSTEM_ACTOR,
      input: { participantId: p.id, programmeId: null, kind: "adjustment", points: -31, idempotencyKey: `adj-${randomUUID()}` },
    }).catch((e) => e);
    expect(err.fields).to.deep.equal({ points: "the balance is 30; an adjustment of -31 would make it negative" });
    expect(await balanceOf(ctx, p.id)).to.equal(30);
  });

  it("is append-only and keeps balances non-negative in the database itself", async () => {
    const p = await buildParticipant(ctx);
    const { entry } = await award(ctx, p.id, 10);
    const update = await ctx.sequelize.query(`update ledger_entries set points = 1000 where id = ${entry.id}`).catch((e: Error) => e);
    expect((update as Error).message).to.match(/ledger_entries is append-only \(UPDATE refused\)/);
    const overdraw = await ctx.sequelize
      .query(
        `insert into ledger_entries (participant_id, kind, points, idempotency_key, created_by) values (${p.id}, 'adjustment', -11, 'raw-${randomUUID()}', 'test')`,
      )
      .catch((e: Error) => e);
    expect((overdraw as Error).message).to.match(/balances never go below zero/);
    expect(await balanceOf(ctx, p.id)).to.equal(10);
  });

  it("lets a manager award points through the page; the form's key stops a double submit", async () => {
    const manager = await buildAccount(ctx, "manager");
    const p = await buildParticipant(ctx);
    const web = new WebClient(app);
    await web.signIn(manager.username, TEST_PASSWORD);
    const page = await web.get(`/manage/participants/${p.id}`);
    const key = /name="idempotencyKey" value="([^"]+)"/.exec(page.text)![1];
    const token = /name="_csrf" value="([^"]+)"/.exec(page.text)![1];
    for (let i = 0; i < 2; i++) {
      const res = await web.post(`/manage/participants/${p.id}/points`, { kind: "award", points: "75", note: "great quarter", idempotencyKey: key }, token);
      expect(res.status).to.equal(303);
    }
    expect(await balanceOf(ctx, p.id)).to.equal(75);
    expect((await web.get(`/manage/participants/${p.id}`)).text).to.include('data-testid="balance">75 points<');
  });
});
