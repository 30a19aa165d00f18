import path from "node:path";
import type { Response, Router } from "express";
import type { ConsoleUpgrades } from "../../control/upgrade-control.ts";
import { BundleRejected } from "../../releases/bundle-importer.ts";
import type { ReleaseStore } from "../../releases/release-store.ts";
import { PlumError } from "../../../lib/errors.ts";
import { signedIn } from "../../../lib/http/auth/session-auth.ts";
import { BadRequestError } from "../../../lib/http/http-errors.ts";
import type { ConsoleContext } from "../console-context.ts";
import { authorize, can } from "../policies.ts";
import { presentRelease } from "../presenters/release-presenter.ts";
import { BUNDLE_FIELD, BUNDLE_UPLOAD_LIMIT_BYTES } from "../uploads/bundle-upload.ts";

export type ConsoleReleases = ConsoleUpgrades & { releases: ReleaseStore };

interface Refusal {
  message: string;
  hint?: string;
  check?: string;
}

/**
 * The Releases page: what this appliance can run, which one serves production, and the bundle import (the
 * multipart body was streamed to disk by bundleUpload once sign-in and CSRF were checked). Auditors read; operators import.
 */
export function releaseRoutes(router: Router, ctx: ConsoleContext, upgrades: ConsoleReleases) {
  const { manager, releases, installed } = upgrades;

  async function renderReleases(res: Response, extra: { status?: number; refusal?: Refusal; imported?: string } = {}) {
    const { actor } = signedIn(res)!;
    const production = await manager.productionVersion(installed);
    res.status(extra.status ?? 200).render("console/releases", {
      title: "Releases",
      production,
      releases: releases.list().map((r) => presentRelease(r, production)),
      canImport: can(actor, "operate", "Release"),
      field: BUNDLE_FIELD,
      limitGiB: BUNDLE_UPLOAD_LIMIT_BYTES / 1024 ** 3,
      refusal: extra.refusal,
      imported: extra.imported,
    });
  }

  router.get("/releases", async (req, res) => {
    authorize(signedIn(res)!.actor, "read", "Release");
    // Only a version string is echoed back, never free text from the query.
    const imported = typeof req.query.imported === "string" && /^\d+\.\d+\.\d+$/.test(req.query.imported) ? req.query.imported : undefined;
    await renderReleases(res, { imported });
  });

  router.post("/releases", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "operate", "Release");
    if (!req.file) throw new BadRequestError("Choose a bundle (plum-X.Y.Z.tar) to import.");
    const who = `user:${actor.username}`;
    const fileName = path.basename(req.file.path);
    const production = await manager.productionVersion(installed);
    try {
      const manifest = await releases.import(req.file.path, { currentVersion: production });
      await ctx.audit.append({
        actor: who,
        action: "release.import",
        target: `release:${manifest.version}`,
        detail: { file: fileName, bytes: req.file.size, schemaVersion: manifest.schemaVersion },
      });
      res.redirect(303, `/releases?imported=${encodeURIComponent(manifest.version)}`);
    } catch (err) {
      if (!(err instanceof PlumError)) throw err;
      const check = err instanceof BundleRejected ? err.check : undefined;
      await ctx.audit.append({
        actor: who,
        action: "release.import",
        target: `file:${fileName}`,
        outcome: "failure",
        detail: { check: check ?? null, error: err.message },
      });
      // Nothing was imported: the page again, with what was refused and what to do about it.
      await renderReleases(res, { status: 422, refusal: { message: err.message, hint: err.hint, check } });
    }
  });
}
