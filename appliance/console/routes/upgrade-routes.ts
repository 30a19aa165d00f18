import type { Response, Router } from "express";
import semver from "semver";
import { z } from "zod";
import { PlumError } from "../../../lib/errors.ts";
import { signedIn, type Actor } from "../../../lib/http/auth/session-auth.ts";
import { BadRequestError } from "../../../lib/http/http-errors.ts";
import { authorize, can, type Action } from "../policies.ts";
import { presentJournal, presentLive, presentUpgrade, upgradeActions } from "../presenters/upgrade-presenter.ts";
import type { ConsoleReleases } from "./release-routes.ts";

const version = z.string().regex(/^\d+\.\d+\.\d+$/, "must be a version X.Y.Z");
const startForm = z.object({ version, promotion: z.enum(["now", "window", "approval"]) });
const rollbackForm = z.object({ to: z.union([version, z.literal("")]).optional() });

const NOTICES: Record<string, string> = {
  started: "The upgrade started. This page follows it.",
  approved: "The promotion is approved: the upgrade goes on to promote.",
  aborted: "The upgrade was aborted: staging is torn down, production was not touched.",
  "abort-requested": "The abort was requested: it takes effect when the step in progress ends.",
  "rollback-started": "The rollback started: traffic goes back to the old release first.",
  "restore-confirmed": "The restore is confirmed: the pre-upgrade snapshot is restored over production.",
};

function parseForm<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success)
    throw new BadRequestError(`The form was not understood: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}.`);
  return parsed.data;
}

/**
 * The Upgrade page (the active or latest upgrade, its live step list, its actions and the start form) and the
 * actions themselves. The manager decides; a refusal it gives (PlumError) is shown on the page with its hint.
 */
export function upgradeRoutes(router: Router, upgrades: ConsoleReleases) {
  const { manager, releases, installed } = upgrades;

  async function renderUpgrade(res: Response, extra: { status?: number; refusal?: { message: string; hint?: string }; notice?: string } = {}) {
    const { actor } = signedIn(res)!;
    const may = { operate: can(actor, "operate", "Upgrade"), approve: can(actor, "approve", "Upgrade") };
    const [state, production] = await Promise.all([manager.status(), manager.productionVersion(installed)]);
    const u = state.latest;
    const all = releases.list();
    const idle = !state.active;
    res.status(extra.status ?? 200).render("console/upgrade", {
      title: "Upgrade",
      production,
      notice: extra.notice,
      refusal: extra.refusal,
      upgrade: u && presentUpgrade(u),
      journal: presentJournal(state.journal),
      live: !!state.active,
      actions: upgradeActions(state.active, may),
      mayApprove: may.approve,
      mayDownloadSupportBundle: can(actor, "export", "SupportBundle"),
      startable: may.operate && idle ? all.filter((r) => semver.gt(r.version, production)).map((r) => r.version) : [],
      rollbackTargets: may.operate && idle ? all.filter((r) => semver.lt(r.version, production)).map((r) => r.version) : [],
      mayOperate: may.operate,
      idle,
      // Only the choices plum.yaml's upgrades.promotion accepts (it names the least an upgrade must wait for).
      promotions: { approval: true, window: manager.configuredPromotion !== "approval", now: manager.configuredPromotion === "now" },
      configuredPromotion: manager.configuredPromotion,
    });
  }

  router.get("/upgrade", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Upgrade");
    await renderUpgrade(res, { notice: NOTICES[String(req.query.notice ?? "")] });
  });

  router.get("/upgrade.json", async (_req, res) => {
    authorize(signedIn(res)!.actor, "read", "Upgrade");
    const { latest } = await manager.status();
    res.json({ upgrade: latest ? presentLive(latest) : null });
  });

  /** An action: authorize, run the manager's command, then back to the page with a notice or the refusal. */
  const action = (path: string, needs: Action, command: (actor: Actor, who: string, body: unknown) => Promise<string>) =>
    router.post(path, async (req, res) => {
      const { actor } = signedIn(res)!;
      authorize(actor, needs, "Upgrade");
      let notice: string;
      try {
        notice = await command(actor, `user:${actor.username}`, req.body);
      } catch (err) {
        if (!(err instanceof PlumError)) throw err;
        return renderUpgrade(res, { status: 409, refusal: { message: err.message, hint: err.hint } });
      }
      res.redirect(303, `/upgrade?notice=${notice}`);
    });

  action("/upgrade", "operate", async (_actor, who, body) => {
    const form = parseForm(startForm, body);
    await manager.start({ version: form.version, promotion: form.promotion, actor: who, installed });
    return "started";
  });

  action("/upgrade/approve", "approve", async (_actor, who) => {
    await manager.approve(who);
    return "approved";
  });

  action("/upgrade/abort", "operate", async (_actor, who) => {
    // The manager answers at once: a waiting upgrade is aborted now, a running step is undone when it ends.
    const u = await manager.abort(who);
    return u.status === "aborted" ? "aborted" : "abort-requested";
  });

  action("/upgrade/rollback", "operate", async (_actor, who, body) => {
    const form = parseForm(rollbackForm, body);
    await manager.rollback({ to: form.to || undefined, actor: who, installed });
    return "rollback-started";
  });

  action("/upgrade/confirm-restore", "approve", async (_actor, who) => {
    await manager.confirmRestore(who);
    return "restore-confirmed";
  });
}
