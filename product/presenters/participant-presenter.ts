import type { LedgerEntry } from "../models/ledger-entry.ts";
import type { Participant } from "../models/participant.ts";

export function presentParticipant(p: Participant, balance?: number) {
  return {
    id: p.id,
    employeeId: p.employeeId,
    name: p.name,
    email: p.email,
    department: p.department,
    manager: p.managerEmployeeId,
    country: p.country,
    hasAccount: p.userId !== null,
    balance,
  };
}

export function presentLedgerEntry(e: LedgerEntry) {
  return { id: e.id, at: e.createdAt, kind: e.kind, points: e.points, credit: e.points > 0, note: e.note, by: e.createdBy, voucherId: e.voucherId };
}
