import type { Router } from "express";
import { z } from "zod";
import { BadRequestError } from "../http-errors.ts";
import type { AuthContext } from "./auth-context.ts";
import { passwordChanger } from "./password-changer.ts";
import { MIN_PASSWORD_LENGTH } from "./passwords.ts";
import type { AuthUser } from "./auth-models.ts";
import { signedIn } from "./session-auth.ts";

const passwordForm = z.object({
  currentPassword: z.string().max(1000).default(""),
  newPassword: z.string().max(1000).default(""),
  confirmPassword: z.string().max(1000).default(""),
});

/** Self-service: every signed-in user may change their own password. */
export function accountRoutes(router: Router, ctx: AuthContext, opts: { passwordView: string; afterChange: (user: AuthUser) => string }) {
  router.get("/account/password", (_req, res) => {
    const { user } = signedIn(res)!;
    res.render(opts.passwordView, { title: "Change password", mustChange: user.mustChangePassword, minLength: MIN_PASSWORD_LENGTH });
  });

  router.post("/account/password", async (req, res) => {
    const { user, session } = signedIn(res)!;
    try {
      await passwordChanger({ ctx, user, sessionId: session.id, input: passwordForm.parse(req.body ?? {}) });
      res.redirect(303, opts.afterChange(user));
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      res.status(400).render(opts.passwordView, {
        title: "Change password",
        mustChange: user.mustChangePassword,
        minLength: MIN_PASSWORD_LENGTH,
        error: err.message,
        fields: err.fields,
      });
    }
  });
}
