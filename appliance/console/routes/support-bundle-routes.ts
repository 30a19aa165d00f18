import { pipeline } from "node:stream/promises";
import type { Router } from "express";
import { signedIn } from "../../../lib/http/auth/session-auth.ts";
import { HttpError } from "../../../lib/http/http-errors.ts";
import { NoSuchSupportBundle, openSupportBundle, type OpenedSupportBundle } from "../../support/support-folder.ts";
import type { ConsoleContext } from "../console-context.ts";
import { authorize } from "../policies.ts";

/**
 * The download of a support bundle the agent wrote (a failed, aborted or rolled-back upgrade's), streamed from
 * the support folder only, for admins. Every download is audited; so is every refused one (a GET the error
 * handler would not audit), since what is asked for is a map of the installation.
 */
export function supportBundleRoutes(router: Router, ctx: ConsoleContext, supportDir: string) {
  router.get("/support-bundles/:name", async (req, res) => {
    const { actor } = signedIn(res)!;
    const who = `user:${actor.username}`;
    const name = String(req.params.name);
    const target = `file:${name.slice(0, 200)}`;
    try {
      authorize(actor, "export", "SupportBundle");
    } catch (err) {
      await ctx.audit.append({ actor: who, action: "support-bundle.download", outcome: "denied", target });
      throw err;
    }
    let bundle: OpenedSupportBundle;
    try {
      bundle = await openSupportBundle(supportDir, name);
    } catch (err) {
      if (!(err instanceof NoSuchSupportBundle)) throw err;
      await ctx.audit.append({ actor: who, action: "support-bundle.download", outcome: "failure", target, detail: { error: err.message } });
      throw new HttpError(404, "There is no such support bundle.");
    }
    try {
      await ctx.audit.append({ actor: who, action: "support-bundle.download", target, detail: { bytes: bundle.bytes } });
    } catch (err) {
      await bundle.handle.close();
      throw err;
    }
    res.status(200).type("application/gzip").attachment(bundle.name).set("content-length", String(bundle.bytes));
    // The stream closes the handle at its end; a browser that gives up half-way is no error of ours.
    await pipeline(bundle.handle.createReadStream(), res).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ERR_STREAM_PREMATURE_CLOSE") throw err;
    });
  });
}
