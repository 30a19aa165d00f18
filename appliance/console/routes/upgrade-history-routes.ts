import type { Router } from "express";
import type { UpgradeManager } from "../../upgrade/upgrade-manager.ts";
import { signedIn } from "../../../lib/http/auth/session-auth.ts";
import { HttpError } from "../../../lib/http/http-errors.ts";
import { authorize, can } from "../policies.ts";
import { presentJournal, presentUpgrade } from "../presenters/upgrade-presenter.ts";

const HISTORY_LIMIT = 200;

/** History: every upgrade and rollback, and each one's report in full with its journal. Read-only. */
export function upgradeHistoryRoutes(router: Router, manager: UpgradeManager) {
  router.get("/upgrades/history", async (_req, res) => {
    authorize(signedIn(res)!.actor, "read", "Upgrade");
    const rows = await manager.journal.history(HISTORY_LIMIT);
    res.render("console/upgrade-history", {
      title: "Upgrade history",
      upgrades: rows.map(presentUpgrade),
      limit: HISTORY_LIMIT,
      full: rows.length === HISTORY_LIMIT,
    });
  });

  router.get("/upgrades/:id", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Upgrade");
    const id = /^\d{1,9}$/.test(String(req.params.id)) ? Number(req.params.id) : undefined;
    const u = id === undefined ? undefined : await manager.journal.get(id);
    if (!u) throw new HttpError(404, `There is no upgrade ${req.params.id}.`);
    const entries = await manager.journal.entries(u.id);
    res.render("console/upgrade-detail", {
      title: `${u.kind === "rollback" ? "Rollback" : "Upgrade"} ${u.id}`,
      upgrade: presentUpgrade(u),
      journal: presentJournal(entries),
      allChecks: true,
      mayDownloadSupportBundle: can(signedIn(res)!.actor, "export", "SupportBundle"),
    });
  });
}
