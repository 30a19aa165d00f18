import type { Response, Router } from "express";
import { z } from "zod";
import { BadRequestError } from "../../../lib/http/http-errors.ts";
import { passwordResetter, userCreator, userUpdater } from "../commands/user-commands.ts";
import type { ConsoleContext } from "../console-context.ts";
import { ROLES } from "../models/ops-models.ts";
import { authorize } from "../policies.ts";
import { presentUser } from "../presenters/user-presenter.ts";
import { signedIn } from "../../../lib/http/auth/session-auth.ts";

const createForm = z.object({ username: z.string().max(100).default(""), role: z.string().max(20).default("") });
const updateForm = z.object({ role: z.string().max(20).optional(), disabled: z.enum(["true", "false"]).optional() });
const userId = z.coerce.number().int().positive();

/** Admins manage console users. Every route authorizes on the server, whatever the page shows. */
export function userRoutes(router: Router, ctx: ConsoleContext) {
  const renderList = async (res: Response, extra: Record<string, unknown> = {}, status = 200) => {
    const users = await ctx.models.User.findAll({ order: [["username", "ASC"]] });
    res.status(status).render("console/users", { title: "Users", users: users.map((u) => presentUser(u)), roles: ROLES, ...extra });
  };

  router.get("/users", async (_req, res) => {
    authorize(signedIn(res)!.actor, "read", "User");
    await renderList(res);
  });

  router.post("/users", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "create", "User");
    try {
      const { user, oneTimePassword } = await userCreator({ ctx, actor, input: createForm.parse(req.body ?? {}) });
      res.status(201).render("console/one-time-password", { title: "User created", username: user.username, oneTimePassword, what: "created" });
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderList(res, { error: err.message, fields: err.fields, form: req.body }, 400);
    }
  });

  router.post("/users/:id", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "update", "User");
    const form = updateForm.parse(req.body ?? {});
    try {
      await userUpdater({
        ctx,
        actor,
        input: { userId: userId.parse(req.params.id), role: form.role, disabled: form.disabled === undefined ? undefined : form.disabled === "true" },
      });
      res.redirect(303, "/users");
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      await renderList(
        res,
        {
          error: `${err.message} ${Object.entries(err.fields)
            .map(([k, v]) => `${k} ${v}`)
            .join("; ")}`,
        },
        400,
      );
    }
  });

  router.post("/users/:id/reset-password", async (req, res) => {
    const { actor } = signedIn(res)!;
    authorize(actor, "update", "User");
    const { user, oneTimePassword } = await passwordResetter({ ctx, actor, input: { userId: userId.parse(req.params.id) } });
    res.render("console/one-time-password", { title: "Password reset", username: user.username, oneTimePassword, what: "reset" });
  });
}
