import { definePolicies } from "../shared/policies.ts";

export type Action = "read" | "export" | "create" | "update" | "delete" | "operate";
export type Subject = "Dashboard" | "AuditLog" | "User" | "Instance" | "Config";

const EVERY_ACTION: Action[] = ["read", "export", "create", "update", "delete", "operate"];
const EVERY_SUBJECT: Subject[] = ["Dashboard", "AuditLog", "User", "Instance", "Config"];

const policies = definePolicies<Action, Subject>({
  verbs: { read: "view", export: "export", create: "create", update: "change", delete: "delete", operate: "operate" },
  nouns: { Dashboard: "the dashboard", AuditLog: "the audit log", User: "console users", Instance: "product instances", Config: "the configuration" },
  whoToAsk: "Ask an admin if you need this.",
});

policies.allow("admin", EVERY_ACTION, EVERY_SUBJECT);
policies.allow("operator", ["read"], ["Dashboard", "Instance", "Config"]);
policies.allow("operator", ["read", "export"], ["AuditLog"]);
policies.allow("operator", ["operate"], ["Instance"]);
// Auditors read and export; they change nothing.
policies.allow("auditor", ["read"], ["Dashboard", "Instance", "Config"]);
policies.allow("auditor", ["read", "export"], ["AuditLog"]);

export const { can, authorize } = policies;
