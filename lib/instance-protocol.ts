import { z } from "zod";
import { PlumError } from "./errors.ts";

/**
 * What a product instance tells the agent over the IPC channel: the port it got once it listens, and that it
 * took a handover (it will outlive this agent and wait to be claimed by the next).
 */
export type InstanceMessage = { type: "ready"; port: number } | { type: "handover-taken" };

/**
 * What the agent tells an instance: it is about to exit for a handover (an agent restart or upgrade). The instance
 * then keeps serving when the IPC channel closes, and stops unless the next agent claims it (CLAIM_SIGNAL) within
 * `graceMs`, and again within every `graceMs` after.
 */
export type AgentMessage = { type: "handover"; graceMs: number };

/** The signal an agent that adopted an instance sends it, every few seconds: "you are still claimed". */
export const CLAIM_SIGNAL = "SIGUSR2" as const;

/** What the agent tells a product instance besides its database URL (PLUM_PRODUCT_SETTINGS, JSON). */
export const productSettingsSchema = z.object({
  cookieSecure: z.boolean(),
  sessionHours: z.number().positive(),
  publicUrl: z.string().url().optional(),
  security: z.object({
    loginMaxFailures: z.number().int().positive(),
    loginWindowSeconds: z.number().int().positive(),
    lockoutSeconds: z.number().int().positive(),
    loginRateLimitPerMinute: z.number().int().positive(),
  }),
  // Optional: an agent older than the release sends neither (the instance then trusts the edge proxy only).
  trustedProxies: z.union([z.number().int().min(0), z.array(z.string())]).optional(),
  importMaxRows: z.number().int().positive().optional(),
});
export type ProductSettings = z.infer<typeof productSettingsSchema>;

export function productSettingsFromEnv(env: NodeJS.ProcessEnv): { settings: ProductSettings; sessionKey: Buffer } {
  const raw = env.PLUM_PRODUCT_SETTINGS;
  const key = env.PLUM_PRODUCT_SESSION_KEY;
  if (!raw || !key || !/^[0-9a-f]{64}$/.test(key)) {
    throw new PlumError("PLUM_PRODUCT_SETTINGS and PLUM_PRODUCT_SESSION_KEY are not set", {
      hint: "product instances are started by the agent (`plumctl agent`), which sets them",
    });
  }
  const parsed = productSettingsSchema.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new PlumError(`PLUM_PRODUCT_SETTINGS is invalid: ${parsed.error.message}`);
  return { settings: parsed.data, sessionKey: Buffer.from(key, "hex") };
}
