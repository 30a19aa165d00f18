import type { AuditLog } from "../audit/audit-log.ts";
import type { AuthContext } from "../../lib/http/auth/auth-context.ts";

/** The console's context: the shared auth context, with the hash-chained audit log as its audit sink. */
export type ConsoleContext = AuthContext & { audit: AuditLog };
