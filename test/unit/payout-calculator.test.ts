import { expect } from "chai";
import { GOLDEN_CASES, GOLDEN_TERMS } from "../../product/payouts/golden-cases.ts";
import { divideRoundHalfDown, formatBpAsPercent, formatMinor, parseMinor, parseScaled } from "../../product/payouts/minor-units.ts";
import { calculatePayout, checkPayoutTerms } from "../../product/payouts/payout-calculator.ts";

describe("payout calculator", () => {
  describe("golden cases (also run by plumctl validate)", () => {
    for (const c of GOLDEN_CASES) {
      it(`${c.name}: ${c.salesMinor} of ${c.quotaMinor} → ${c.amountMinor}`, () => {
        const r = calculatePayout(GOLDEN_TERMS, c);
        expect({ attainmentBp: r.attainmentBp, amountMinor: r.amountMinor, capped: r.breakdown.capped }).to.deep.equal({
          attainmentBp: c.attainmentBp,
          amountMinor: c.amountMinor,
          capped: c.capped,
        });
      });
    }
  });

  it("explains an accelerated, capped amount in its breakdown", () => {
    const r = calculatePayout(GOLDEN_TERMS, { quotaMinor: 1_000_000n, salesMinor: 2_000_012n });
    expect(r.breakdown).to.deep.equal({
      quotaMinor: "1000000",
      salesMinor: "2000012",
      attainmentBp: "20000",
      tier: { index: 3, fromAttainmentBp: 10000, rateBp: 600 },
      baseSalesMinor: "1000000",
      acceleratedSalesMinor: "1000012",
      acceleratorBp: 15000,
      uncappedMinor: "150001",
      capMinor: "150000",
      capped: true,
      rounding: "half-down",
    });
  });

  it("pays nothing below a first tier that starts above zero, and names no tier", () => {
    const terms = { tiers: [{ fromAttainmentBp: 9000, rateBp: 500 }], acceleratorBp: 10000, capMinor: 1_000_000n };
    const below = calculatePayout(terms, { quotaMinor: 100_000n, salesMinor: 89_999n });
    expect([below.attainmentBp, below.amountMinor, below.breakdown.tier]).to.deep.equal([8999n, 0n, null]);
    expect(calculatePayout(terms, { quotaMinor: 100_000n, salesMinor: 90_000n }).amountMinor).to.equal(4_500n);
  });

  it("uses the plain rate above quota when the accelerator is 1×", () => {
    const terms = { ...GOLDEN_TERMS, acceleratorBp: 10000, capMinor: 10n ** 12n };
    expect(calculatePayout(terms, { quotaMinor: 1_000_000n, salesMinor: 1_500_000n }).amountMinor).to.equal(90_000n);
  });

  it("stays exact with amounts far beyond a float's 53 bits", () => {
    const terms = { tiers: [{ fromAttainmentBp: 0, rateBp: 333 }], acceleratorBp: 17_777, capMinor: 10n ** 12n };
    // 999,999,999,999 × 3.33 % = 33,299,999,999.96667 (all below quota) → rounds up to 33,300,000,000.
    expect(calculatePayout(terms, { quotaMinor: 10n ** 12n, salesMinor: 999_999_999_999n }).amountMinor).to.equal(33_300_000_000n);
  });

  it("refuses a quota of zero and negative sales", () => {
    expect(() => calculatePayout(GOLDEN_TERMS, { quotaMinor: 0n, salesMinor: 1n })).to.throw(RangeError, "quota must be positive (got 0)");
    expect(() => calculatePayout(GOLDEN_TERMS, { quotaMinor: 1n, salesMinor: -1n })).to.throw(RangeError, "sales must not be negative (got -1)");
  });

  describe("rule checks", () => {
    it("accepts the golden rule", () => {
      expect(checkPayoutTerms(GOLDEN_TERMS)).to.deep.equal({});
    });

    it("names tiers that are not strictly ascending, negative rates, a decelerator and a cap of zero", () => {
      expect(
        checkPayoutTerms({
          tiers: [
            { fromAttainmentBp: 8000, rateBp: 400 },
            { fromAttainmentBp: 8000, rateBp: 500 },
          ],
          acceleratorBp: 10000,
          capMinor: 1n,
        }),
      ).to.deep.equal({
        tiers: "tier 2: thresholds must be strictly ascending (80.00 % follows 80.00 %)",
      });
      expect(checkPayoutTerms({ tiers: [{ fromAttainmentBp: 0, rateBp: -1 }], acceleratorBp: 9999, capMinor: 0n })).to.deep.equal({
        tiers: "tier 1: its rate must be 0 to 100.00 % of sales in whole basis points, never negative (got -1 bp)",
        acceleratorBp: "must be from 1× to 10× (10000 to 100000 bp; got 9999)",
        capMinor: "must be more than 0 and at most 1000000000000 minor units (got 0)",
      });
      expect(checkPayoutTerms({ tiers: [], acceleratorBp: 10000, capMinor: 5n })).to.deep.equal({ tiers: "at least one tier is needed" });
      expect(checkPayoutTerms({ tiers: [{ fromAttainmentBp: "80", rateBp: 1 }], acceleratorBp: 10000, capMinor: 5n })).to.deep.equal({
        tiers: 'tier 1: its attainment threshold must be 0 to 10000.00 % of quota in whole basis points (got "80" bp)',
      });
    });

    it("refuses to calculate with an invalid rule", () => {
      expect(() => calculatePayout({ ...GOLDEN_TERMS, capMinor: 0n }, { quotaMinor: 1n, salesMinor: 1n })).to.throw(
        RangeError,
        "invalid payout rule: capMinor must be more than 0",
      );
    });
  });

  describe("integer money", () => {
    it("rounds half down: exactly half goes down, more than half goes up", () => {
      expect([5n, 15n, 16n, 14n, 0n].map((n) => divideRoundHalfDown(n, 10n))).to.deep.equal([0n, 1n, 2n, 1n, 0n]);
      expect(divideRoundHalfDown(1_000_050_000_000n, 100_000_000n)).to.equal(10_000n);
    });

    it("formats minor units per the currency's exponent and basis points as percent", () => {
      expect([
        formatMinor(105_000n, "EUR"),
        formatMinor(5n, "EUR"),
        formatMinor(1234n, "JPY"),
        formatMinor(1234n, "BHD"),
        formatMinor(0n, "USD"),
      ]).to.deep.equal(["1050.00", "0.05", "1234", "1.234", "0.00"]);
      expect([formatBpAsPercent(10250n), formatBpAsPercent(5), formatBpAsPercent(20_000n)]).to.deep.equal(["102.50", "0.05", "200.00"]);
    });

    it("parses typed decimals and CSV minor units without floats", () => {
      expect([parseScaled("12.5", 2), parseScaled("0.07", 2), parseScaled("1.5", 4), parseScaled("3", 0)]).to.deep.equal([1250n, 7n, 15000n, 3n]);
      expect([parseScaled("1.234", 2), parseScaled("-1", 2), parseScaled("1,000", 2), parseScaled("", 2)]).to.deep.equal([
        undefined,
        undefined,
        undefined,
        undefined,
      ]);
      expect([parseMinor("125000"), parseMinor("0"), parseMinor("1000000000000")]).to.deep.equal([125_000n, 0n, 10n ** 12n]);
      expect([parseMinor("1000000000001"), parseMinor("12.50"), parseMinor("-5"), parseMinor("1e3")]).to.deep.equal([
        undefined,
        undefined,
        undefined,
        undefined,
      ]);
    });
  });
});
