/** What the dashboard shows; provided by the agent that hosts the console. */
export interface ApplianceStatus {
  /** The agent's own release: the control plane, which outlives every product release (it may differ from production's). */
  agentVersion: string;
  startedAt: Date;
  /** What serves production: its release, instance and health (Production's own account). */
  production: { version?: string; instance?: string; healthy: boolean; detail: string; detached?: string };
  database: { mode: "embedded" | "external"; host: string; port: number; serverVersion: string; productDatabase: string; opsDatabase: string };
  proxy: { listening: string; activeInstance?: string };
  instances: Array<{ id: string; slot: string; version: string; url: string; pid?: number; startedAt: Date; live: boolean; ready: boolean; detail: string }>;
}

export type StatusProvider = () => Promise<ApplianceStatus>;
