import { ForbiddenError } from "../shared/http-errors.ts";
import type { Actor } from "../shared/auth/session-auth.ts";
import type { Role } from "./models/ops-models.ts";

export type Action = "read" | "export" | "create" | "update" | "delete" | "operate";
export type Subject = "Dashboard" | "AuditLog" | "User" | "Instance" | "Config";

const rules = new Set<string>();
const key = (role: string, action: Action, subject: Subject) => `${role}:${action}:${subject}`;

/** Declare what a role may do to a subject. Everything not allowed is refused. */
function allow(role: Role, actions: Action[], subjects: Subject[]): void {
  for (const a of actions) for (const s of subjects) rules.add(key(role, a, s));
}

const EVERY_ACTION: Action[] = ["read", "export", "create", "update", "delete", "operate"];
const EVERY_SUBJECT: Subject[] = ["Dashboard", "AuditLog", "User", "Instance", "Config"];

allow("admin", EVERY_ACTION, EVERY_SUBJECT);
allow("operator", ["read"], ["Dashboard", "Instance", "Config"]);
allow("operator", ["read", "export"], ["AuditLog"]);
allow("operator", ["operate"], ["Instance"]);
// Auditors read and export; they change nothing.
allow("auditor", ["read"], ["Dashboard", "Instance", "Config"]);
allow("auditor", ["read", "export"], ["AuditLog"]);

const VERBS: Record<Action, string> = { read: "view", export: "export", create: "create", update: "change", delete: "delete", operate: "operate" };
const NOUNS: Record<Subject, string> = { Dashboard: "the dashboard", AuditLog: "the audit log", User: "console users", Instance: "product instances", Config: "the configuration" };

export function can(actor: Actor | undefined, action: Action, subject: Subject): boolean {
  return !!actor && rules.has(key(actor.role, action, subject));
}

/** Throws 403 unless the actor's role may do this. */
export function authorize(actor: Actor | undefined, action: Action, subject: Subject): void {
  if (!can(actor, action, subject)) {
    throw new ForbiddenError(`Your role (${actor?.role ?? "signed out"}) may not ${VERBS[action]} ${NOUNS[subject]}. Ask an admin if you need this.`);
  }
}
