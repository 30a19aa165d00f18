import type { Router } from "express";
import { z } from "zod";
import { BadRequestError } from "../../shared/http-errors.ts";
import { passwordChanger } from "../commands/password-changer.ts";
import type { ConsoleContext } from "../context.ts";
import { MIN_PASSWORD_LENGTH } from "../passwords.ts";
import { signedIn } from "../session-auth.ts";

const passwordForm = z.object({ currentPassword: z.string().max(1000).default(""), newPassword: z.string().max(1000).default(""), confirmPassword: z.string().max(1000).default("") });

/** Self-service: every signed-in user may change their own password (auditors too). */
export function accountRoutes(router: Router, ctx: ConsoleContext) {
  router.get("/account/password", (_req, res) => {
    const { user } = signedIn(res)!;
    res.render("console/password", { title: "Change password", mustChange: user.mustChangePassword, minLength: MIN_PASSWORD_LENGTH });
  });

  router.post("/account/password", async (req, res) => {
    const { user, session } = signedIn(res)!;
    try {
      await passwordChanger({ ctx, user, sessionId: session.id, input: passwordForm.parse(req.body ?? {}) });
      res.redirect(303, "/?notice=password-changed");
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      res.status(400).render("console/password", { title: "Change password", mustChange: user.mustChangePassword, minLength: MIN_PASSWORD_LENGTH, error: err.message, fields: err.fields });
    }
  });
}
