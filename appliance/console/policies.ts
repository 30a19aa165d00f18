import { definePolicies } from "../../lib/http/policies.ts";

export type Action = "read" | "export" | "create" | "update" | "delete" | "operate" | "approve";
export type Subject =
  "Dashboard" | "AuditLog" | "User" | "Instance" | "Config" | "Backup" | "Restore" | "Drill" | "Evidence" | "Release" | "Upgrade" | "SupportBundle";

const EVERY_ACTION: Action[] = ["read", "export", "create", "update", "delete", "operate", "approve"];
const EVERY_SUBJECT: Subject[] = [
  "Dashboard",
  "AuditLog",
  "User",
  "Instance",
  "Config",
  "Backup",
  "Restore",
  "Drill",
  "Evidence",
  "Release",
  "Upgrade",
  "SupportBundle",
];

const policies = definePolicies<Action, Subject>({
  verbs: { read: "view", export: "export", create: "create", update: "change", delete: "delete", operate: "operate", approve: "approve" },
  nouns: {
    Dashboard: "the dashboard",
    AuditLog: "the audit log",
    User: "console users",
    Instance: "product instances",
    Config: "the configuration",
    Backup: "backups",
    Restore: "restores",
    Drill: "restore drills",
    Evidence: "backup evidence",
    Release: "releases",
    Upgrade: "upgrades",
    SupportBundle: "support bundles",
  },
  whoToAsk: "Ask an admin if you need this.",
});

policies.allow("admin", EVERY_ACTION, EVERY_SUBJECT);
policies.allow("operator", ["read"], ["Dashboard", "Instance", "Config"]);
policies.allow("operator", ["read", "export"], ["AuditLog"]);
policies.allow("operator", ["operate"], ["Instance"]);
// Operators run backups and drills; restoring over production is for admins.
policies.allow("operator", ["read", "export", "operate"], ["Backup", "Drill"]);
policies.allow("operator", ["read"], ["Restore"]);
// Auditors read and export; they change nothing.
policies.allow("auditor", ["read"], ["Dashboard", "Instance", "Config"]);
policies.allow("auditor", ["read", "export"], ["AuditLog", "Backup", "Drill"]);
policies.allow("auditor", ["read"], ["Restore"]);
// Signed backup evidence: exporting it changes nothing but the audit log.
policies.allow("operator", ["read", "export"], ["Evidence"]);
policies.allow("auditor", ["read", "export"], ["Evidence"]);
// Releases and upgrades: operators import bundles, start, abort and roll back upgrades. Approving a promotion
// and confirming a restore that loses the write window ("approve") stay with admins, who have every action.
policies.allow("operator", ["read", "operate"], ["Release", "Upgrade"]);
policies.allow("auditor", ["read"], ["Release", "Upgrade"]);
// Support bundles (a failed upgrade's, for the vendor): admins only, by granting nobody else. Their known secrets
// are masked, but a bundle is still a map of the whole installation (configuration, hosts, repository locations,
// log tails, audit rows with names and addresses) and the masking only catches the secrets it knows or
// recognises; handing that to a vendor is an admin's decision. Auditors have the signed evidence for their part.

export const { can, authorize } = policies;
