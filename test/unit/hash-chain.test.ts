import { expect } from "chai";
import { ChainVerifier, canonicalJson, chainHash, GENESIS_HASH, type ChainedRow } from "../../lib/hash-chain.ts";

function buildChain(n: number): ChainedRow[] {
  const rows: ChainedRow[] = [];
  let prev = GENESIS_HASH;
  for (let id = 1; id <= n; id++) {
    const record = { id, action: `event-${id}`, detail: { n: id } };
    const hash = chainHash(prev, record);
    rows.push({ id, prevHash: prev, hash, record });
    prev = hash;
  }
  return rows;
}

function verify(rows: ChainedRow[], head = { lastId: rows.at(-1)?.id ?? 0, lastHash: rows.at(-1)?.hash ?? GENESIS_HASH }) {
  const v = new ChainVerifier();
  v.feed(rows);
  return v.finish(head);
}

describe("hash chain", () => {
  it("hashes the same record the same way whatever its key order", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).to.equal('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(chainHash(GENESIS_HASH, { a: 1, b: 2 })).to.equal(chainHash(GENESIS_HASH, { b: 2, a: 1 }));
  });

  it("verifies an intact chain", () => {
    expect(verify(buildChain(10))).to.deep.equal({ ok: true, checked: 10, firstBad: undefined });
  });

  it("names an edited row", () => {
    const rows = buildChain(10);
    rows[4].record = { ...rows[4].record, action: "something else" };
    expect(verify(rows).firstBad).to.deep.equal({ id: 5, reason: "row 5 was edited: its content does not match its hash" });
  });

  it("names the row after a deleted one", () => {
    const rows = buildChain(10);
    rows.splice(3, 1);
    const verdict = verify(rows);
    expect(verdict.ok).to.equal(false);
    expect(verdict.firstBad!.id).to.equal(5);
    expect(verdict.firstBad!.reason).to.include("row 4 deleted");
  });

  it("catches rows swapped in place (ids kept, contents reordered)", () => {
    const rows = buildChain(10);
    const a = rows[6];
    const b = rows[7];
    rows[6] = { ...b, id: 7, record: { ...b.record, id: 7 } };
    rows[7] = { ...a, id: 8, record: { ...a.record, id: 8 } };
    expect(verify(rows).firstBad!.id).to.equal(7);
  });

  it("catches the newest rows deleted, through the head", () => {
    const rows = buildChain(10);
    const head = { lastId: 10, lastHash: rows[9].hash };
    const verdict = verify(rows.slice(0, 8), head);
    expect(verdict.ok).to.equal(false);
    expect(verdict.firstBad).to.deep.equal({ id: 9, reason: "rows 9–10 are missing: the chain's head says it ends at row 10" });
  });
});
