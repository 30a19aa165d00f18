import type { Actor } from "./auth/session-auth.ts";
import { ForbiddenError } from "./http-errors.ts";

/**
 * Role policies declared once per subject: `allow(role, actions, subjects)`. Handlers call `authorize()`,
 * which throws 403 with a sentence the user can act on; everything not allowed is refused.
 */
export function definePolicies<A extends string, S extends string>(words: { verbs: Record<A, string>; nouns: Record<S, string>; whoToAsk: string }) {
  const rules = new Set<string>();
  const key = (role: string, action: A, subject: S) => `${role}:${action}:${subject}`;
  const can = (actor: Pick<Actor, "role"> | undefined, action: A, subject: S) => !!actor && rules.has(key(actor.role, action, subject));
  return {
    allow(role: string, actions: readonly A[], subjects: readonly S[]): void {
      for (const a of actions) for (const s of subjects) rules.add(key(role, a, s));
    },
    can,
    authorize(actor: Pick<Actor, "role"> | undefined, action: A, subject: S): void {
      if (!can(actor, action, subject)) {
        throw new ForbiddenError(`Your role (${actor?.role ?? "signed out"}) may not ${words.verbs[action]} ${words.nouns[subject]}. ${words.whoToAsk}`);
      }
    },
  };
}
