import type { Router } from "express";
import type { StatusProvider } from "../status.ts";
import { authorize } from "../policies.ts";
import { signedIn } from "../../../lib/http/auth/session-auth.ts";

const NOTICES: Record<string, string> = { "password-changed": "Your password was changed." };

function formatUptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d} d ${h} h ${m} min` : h > 0 ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

export function dashboardRoutes(router: Router, status: StatusProvider) {
  router.get("/", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Dashboard");
    const current = await status();
    res.render("console/dashboard", {
      title: "Dashboard",
      notice: NOTICES[String(req.query.notice ?? "")],
      status: current,
      uptime: formatUptime(Date.now() - current.startedAt.getTime()),
      healthy: current.production.healthy,
    });
  });
}
