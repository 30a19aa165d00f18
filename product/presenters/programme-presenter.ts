import type { Programme } from "../models/programme.ts";

const KIND_LABELS: Record<string, string> = { recognition: "Recognition", sales_incentive: "Sales incentive", loyalty: "Loyalty" };

export function presentProgramme(p: Programme) {
  return {
    id: p.id,
    name: p.name,
    kind: p.kind,
    kindLabel: KIND_LABELS[p.kind] ?? p.kind,
    description: p.description,
    currency: p.currency,
    status: p.status,
    active: p.status === "active",
  };
}
