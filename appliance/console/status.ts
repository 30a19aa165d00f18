/** What the dashboard shows; provided by the agent that hosts the console. */
export interface ApplianceStatus {
  version: string;
  startedAt: Date;
  database: { mode: "embedded" | "external"; host: string; port: number; serverVersion: string; productDatabase: string; opsDatabase: string };
  proxy: { listening: string; activeInstance?: string };
  instances: Array<{ id: string; slot: string; version: string; url: string; pid?: number; startedAt: Date; live: boolean; ready: boolean; detail: string }>;
}

export type StatusProvider = () => Promise<ApplianceStatus>;
