import type express from "express";
import { z } from "zod";
import { PlumError } from "../../lib/errors.ts";

/**
 * A control API handler: `work` gets the JSON body and returns the answer. A PlumError or a body that fails
 * its schema is a refusal (409, with the reason and hint `plumctl` prints); anything else is a 500.
 */
export const controlRoute =
  (work: (body: unknown) => Promise<unknown>, status = 200): express.RequestHandler =>
  async (req, res) => {
    try {
      res.status(status).json(await work(req.body ?? {}));
    } catch (err) {
      if (err instanceof z.ZodError) return void res.status(409).json({ error: err.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
      const known = err instanceof PlumError;
      res.status(known ? 409 : 500).json({ error: (err as Error).message, hint: known ? err.hint : undefined, detail: known ? err.detail : undefined });
    }
  };
