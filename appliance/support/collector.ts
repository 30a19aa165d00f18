import type pg from "pg";
import type { PlumConfig } from "../../lib/config.ts";
import type { AgentEndpoint } from "../control/control-client.ts";

/** A member of the bundle as collected: text as it is, anything else written as JSON. Redacted afterwards. */
export interface Collected {
  member: string;
  content: unknown;
}

/** What the collectors may reach; a database or the agent absent when it cannot be reached (the reason is kept). */
export interface CollectionContext {
  config: PlumConfig;
  ops?: pg.Client;
  product?: pg.Client;
  agent?: AgentEndpoint;
  /** Why a source is absent, by source ("plum_ops", "agent", …), for the collectors that need it. */
  unreachable: Record<string, string>;
  now: Date;
}

/** One part of a bundle; it throws when it cannot collect (the reason goes in collection.json, the bundle is still made). */
export interface Collector {
  name: string;
  collect(ctx: CollectionContext): Promise<Collected[]>;
}

/** A source this collector needs is not there: said in collection.json as "skipped", with the reason. */
export class NotCollected extends Error {}

/** The ops database, or NotCollected with the reason it could not be reached. */
export function needOps(ctx: CollectionContext): pg.Client {
  if (!ctx.ops) throw new NotCollected(ctx.unreachable.ops ?? "plum_ops is not reachable");
  return ctx.ops;
}
