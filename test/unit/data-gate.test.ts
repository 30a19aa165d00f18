import { expect } from "chai";
import { describeUndeclared, judge, withRowCounts } from "../../appliance/upgrade/data-gate.ts";
import type { DeclaredChange } from "../../lib/db/data-changes.ts";
import { editedFingerprint, fakeFingerprint } from "../support/fake-fingerprints.ts";

const BEFORE = fakeFingerprint({
  participants: { rows: 3, columns: { id: "1", name: "2", email: "3" } },
  payouts: { rows: 5, columns: { id: "4", amount_minor: "5" } },
  audit_trail: { rows: 4, columns: { at: "6", what: "7" }, key: [] },
});
BEFORE.tables.audit_trail.unkeyed = "u1";

const M = "1732000000900_next";
const d = (c: Omit<DeclaredChange, "source">) => ({ ...c, source: "derived" as const, migration: M });
const findings = (j: ReturnType<typeof judge>) => j.undeclared.map(describeUndeclared);

describe("data-diff gate: fingerprints before and after judged against declarations", () => {
  it("finds nothing when nothing changed and nothing is declared", () => {
    const j = judge(BEFORE, structuredClone(BEFORE), []);
    expect(j).to.deep.equal({ declared: [], undeclared: [], comparisons: [] });
  });

  it("names every undeclared kind of difference, and asks for a row comparison where rows tell more", () => {
    const after = editedFingerprint(BEFORE, (t) => {
      t.participants.columns.email.hash = "lower";
      t.participants.columns.phone = { values: 3, hash: "9" };
      delete t.participants.columns.name;
      t.payouts.rows = 4;
      delete t.audit_trail;
      t.badges = { rows: 0, key: ["id"], columns: {}, hash: "" };
    });
    const j = judge(BEFORE, after, []);
    expect(findings(j)).to.deep.equal([
      "table audit_trail (4 rows) is gone",
      "participants.email: values changed",
      "column participants.name is gone",
      "column participants.phone appeared",
      "payouts: 1 row fewer (5 → 4)",
      "table badges appeared (0 rows)",
    ]);
    expect(j.comparisons).to.deep.equal([
      { before: { table: "participants", key: ["id"], columns: ["email", "id"] }, after: { table: "participants", key: ["id"], columns: ["email", "id"] } },
      { before: { table: "payouts", key: ["id"], columns: ["amount_minor", "id"] }, after: { table: "payouts", key: ["id"], columns: ["amount_minor", "id"] } },
    ]);
  });

  it("follows renames in order, and accepts what is declared, each with what was measured", () => {
    const after = editedFingerprint(BEFORE, (t) => {
      t.members = t.participants;
      delete t.participants;
      t.members.columns.mail = t.members.columns.email;
      delete t.members.columns.email;
      t.members.columns.country = { values: 3, hash: "8" };
      t.payouts.columns.amount_minor.hash = "rounded";
      t.audit_trail.rows = 6;
      t.audit_trail.unkeyed = "u2";
      t.audit_trail.columns.what.hash = "more";
    });
    const declared = [
      d({ change: "table-renamed", table: "participants", to: "members" }),
      d({ change: "column-renamed", table: "members", column: "email", to: "mail" }),
      d({ change: "column-added", table: "members", column: "country" }),
      d({ change: "column-rewritten", table: "payouts", column: "amount_minor" }),
      d({ change: "rows-inserted", table: "audit_trail" }),
      d({ change: "column-rewritten", table: "members", column: "name" }),
    ];
    const j = judge(BEFORE, after, declared);
    expect(j.undeclared).to.deep.equal([]);
    expect(j.declared.map((x) => x.measured)).to.deep.equal([
      "renamed, 3 rows",
      "renamed",
      "added, 3 non-null values",
      "values changed",
      "4 → 6 rows",
      "no value changed",
    ]);
  });

  it("checks the direction of a declared row change: rows declared inserted may not disappear", () => {
    const after = editedFingerprint(BEFORE, (t) => (t.payouts.rows = 2));
    const j = judge(BEFORE, after, [d({ change: "rows-inserted", table: "payouts" })]);
    expect(findings(j)).to.deep.equal(["payouts: 3 rows fewer (5 → 2)"]);
  });

  it("sees rows moved within a table without a primary key only through its whole-row sum, and says so", () => {
    const after = editedFingerprint(BEFORE, (t) => (t.audit_trail.unkeyed = "swapped"));
    const j = judge(BEFORE, after, []);
    expect(findings(j)).to.deep.equal(["audit_trail: rows changed (the table has no primary key: the column cannot be told)"]);
    expect(j.comparisons, "no key to compare rows by").to.deep.equal([]);
  });

  it("a declared drop that did not happen is shown, not refused", () => {
    const j = judge(BEFORE, structuredClone(BEFORE), [d({ change: "table-dropped", table: "payouts" })]);
    expect(j.declared[0].measured).to.equal("still there after the migrations");
  });

  it("fills in the rows and keys the row comparison found", () => {
    const after = editedFingerprint(BEFORE, (t) => {
      t.payouts.rows = 4;
      t.participants.columns.name.hash = "x";
    });
    const j = judge(BEFORE, after, []);
    const filled = withRowCounts(j.undeclared, [
      {
        table: "payouts",
        differences: { compared: 4, deleted: { rows: 1, examples: ["id=5"] }, inserted: { rows: 0, examples: [] }, changed: {} },
      },
      {
        table: "participants",
        differences: {
          compared: 3,
          deleted: { rows: 0, examples: [] },
          inserted: { rows: 0, examples: [] },
          changed: { name: { rows: 1, examples: ["id=2"] } },
        },
      },
    ]);
    expect(filled.map(describeUndeclared)).to.deep.equal(["participants.name: 1 row changed (e.g. id=2)", "payouts: 1 row deleted (e.g. id=5)"]);
  });
});
