import type { BackupContext } from "./backup-context.ts";
import type { BackupOperations } from "./backup-operations.ts";

/** Stop and start the production instance around a restore's swap (the agent's; no-ops without an agent). */
export interface InstanceControl {
  stopProduct(): Promise<void>;
  startProduct(): Promise<void>;
}

const NOT_YET = () => Promise.reject(new Error("backups are being wired in: not available in this build yet"));

/** The backup agent's operations over a context. (Wired to the set creator, copier, checker, restorer and drills.) */
export function backupOperationsFor(_ctx: BackupContext, _instances: InstanceControl = { stopProduct: async () => undefined, startProduct: async () => undefined }): BackupOperations {
  return { backup: NOT_YET, copy: NOT_YET, check: NOT_YET, forget: NOT_YET, restore: NOT_YET, drill: NOT_YET };
}
