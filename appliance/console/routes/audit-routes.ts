import type { Router } from "express";
import { z } from "zod";
import type { AuditFilter } from "../../audit/audit-log.ts";
import type { ConsoleContext } from "../console-context.ts";
import { authorize } from "../policies.ts";
import { signedIn } from "../../../lib/http/auth/session-auth.ts";

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "a date as YYYY-MM-DD");
const filterQuery = z.object({
  actor: z.string().max(100).optional(),
  action: z.string().max(100).optional(),
  from: day.optional().or(z.literal("")),
  to: day.optional().or(z.literal("")),
  before: z.coerce.number().int().positive().optional(),
});

function toFilter(q: z.infer<typeof filterQuery>, limit: number): AuditFilter {
  return {
    actor: q.actor || undefined,
    action: q.action || undefined,
    from: q.from ? new Date(`${q.from}T00:00:00Z`) : undefined,
    to: q.to ? new Date(new Date(`${q.to}T00:00:00Z`).getTime() + 86400_000) : undefined,
    beforeId: q.before,
    limit,
  };
}

function csvCell(v: unknown): string {
  const s = v instanceof Date ? v.toISOString() : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "");
  const guarded = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s; // no formulas when opened in a spreadsheet
  return /[",\n\r]/.test(guarded) ? `"${guarded.replace(/"/g, '""')}"` : guarded;
}

export function auditRoutes(router: Router, ctx: ConsoleContext) {
  router.get("/audit", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "AuditLog");
    const parsed = filterQuery.safeParse(req.query);
    const q = parsed.success ? parsed.data : {};
    const rows = await ctx.audit.list(toFilter(q, 51));
    const page = rows.slice(0, 50);
    const verdict = req.query.verify === "1" ? await ctx.audit.verifyAnchored() : undefined;
    const params = new URLSearchParams(
      Object.entries(q)
        .filter(([k, v]) => v !== undefined && v !== "" && k !== "before")
        .map(([k, v]) => [k, String(v)]),
    );
    res.render("console/audit", {
      title: "Audit log",
      rows: page,
      filter: q,
      filterError: parsed.success ? undefined : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
      olderHref: rows.length > 50 ? `/audit?${new URLSearchParams([...params, ["before", String(page[page.length - 1].id)]])}` : undefined,
      exportHref: `/audit/export.csv?${params}`,
      verifyHref: `/audit?${new URLSearchParams([...params, ["verify", "1"]])}`,
      verdict,
    });
  });

  router.get("/audit/export.csv", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "export", "AuditLog");
    const q = filterQuery.parse(req.query);
    // What is handed out is anchored first: a later rewrite of these rows then contradicts a signed checkpoint.
    const anchor = await ctx.audit.checkpoint("export");
    const rows = await ctx.audit.list(toFilter(q, 100_000));
    await ctx.audit.append({
      actor: `user:${actor.username}`,
      action: "audit.export",
      detail: { rows: rows.length, filter: q, anchor: anchor && { seq: anchor.seq, lastId: anchor.lastId } },
    });
    res.type("text/csv").attachment("plum-audit-log.csv");
    const header = ["id", "at", "actor", "action", "target", "outcome", "detail", "prev_hash", "hash"];
    const lines = rows.map((r) => [r.id, r.at, r.actor, r.action, r.target, r.outcome, r.detail, r.prevHash, r.hash].map(csvCell).join(","));
    res.send([header.join(","), ...lines].join("\n") + "\n");
  });
}
