import type { DeclaredChange, MigrationDataChanges } from "../../lib/db/data-changes.ts";
import type { DatabaseFingerprint, TableFingerprint } from "../../lib/db/table-fingerprints.ts";

/**
 * Fingerprints as the fake upgrade host's databases hold them: tables of named column hashes (the values are
 * labels, not real sums; the gate only compares them), and what a release's migrations do to them.
 */
export type FakeTables = Record<string, { rows: number; columns: Record<string, string>; key?: string[] }>;

export function fakeFingerprint(tables: FakeTables): DatabaseFingerprint {
  const out: Record<string, TableFingerprint> = {};
  for (const [name, t] of Object.entries(tables)) {
    const columns = Object.fromEntries(Object.entries(t.columns).map(([c, hash]) => [c, { values: t.rows, hash }]));
    out[name] = { rows: t.rows, key: t.key ?? ["id"], columns, hash: JSON.stringify([t.rows, t.columns]) };
  }
  return { format: 1, tables: out };
}

/** A copy of a fingerprint changed by `edit` (the fake's migrations). */
export function editedFingerprint(f: DatabaseFingerprint, edit: (tables: DatabaseFingerprint["tables"]) => void): DatabaseFingerprint {
  const copy = structuredClone(f);
  edit(copy.tables);
  return copy;
}

/** Production's data in the fake world before any upgrade: three product tables. */
export const PRODUCTION_DATA = fakeFingerprint({
  participants: { rows: 200, columns: { id: "p-id", name: "p-name", email: "p-email" } },
  vouchers: { rows: 40, columns: { id: "v-id", code: "v-code", points_cost: "v-cost" } },
  settings: { rows: 2, columns: { key: "s-key", value: "s-value" }, key: ["key"] },
});

/** What 0.2.0's migration does (as the e2e suites' 1732000000500_release-notes): a table and a column added. */
export function releaseNotesMigration(f: DatabaseFingerprint): DatabaseFingerprint {
  return editedFingerprint(f, (t) => {
    t.release_notes = { rows: 0, key: ["id"], columns: { id: { values: 0, hash: "0" }, body: { values: 0, hash: "0" } }, hash: "rn" };
    t.participants.columns.nickname = { values: 0, hash: "0" };
  });
}

export function declared(
  migration: string,
  ...changes: Array<Omit<DeclaredChange, "source"> & { source?: DeclaredChange["source"] }>
): Record<string, MigrationDataChanges> {
  return { [migration]: { changes: changes.map((c) => ({ source: "derived", ...c })) } };
}

/** 0.2.0's declaration, as the builder derives it from that migration. */
export const RELEASE_NOTES_DECLARED = declared(
  "1732000000500_release-notes",
  { change: "table-added", table: "release_notes" },
  { change: "column-added", table: "participants", column: "nickname" },
);
