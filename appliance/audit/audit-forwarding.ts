import type { Sequelize } from "sequelize";
import type { ChainAnchor } from "../../lib/chain-anchors.ts";
import type { PlumConfig } from "../../lib/config.ts";
import { canonicalJson } from "../../lib/hash-chain.ts";
import { chainEvents, type ChainedRow, type Checkpoint } from "../../lib/hash-chained-log.ts";
import type { Logger } from "../../lib/logger.ts";
import { formatRfc5424, SD_ENTERPRISE, SyslogForwarder, syslogMessage, type SyslogHeader, type SyslogMessage } from "../../lib/syslog.ts";

/** An audit event as a syslog message: the chain's id and hash in structured data, the event in words. */
export function auditEventMessage(row: ChainedRow<Record<string, unknown>>, h: SyslogHeader): SyslogMessage {
  const outcome = String(row.outcome ?? "success");
  const detail = row.detail && typeof row.detail === "object" && Object.keys(row.detail).length ? ` ${canonicalJson(row.detail)}` : "";
  return syslogMessage(h, {
    severity: outcome === "success" ? "notice" : "warning",
    time: row.at,
    msgId: "audit",
    data: [
      {
        id: `audit@${SD_ENTERPRISE}`,
        params: [
          ["chain", "audit_log"],
          ["id", row.id],
          ["hash", row.hash],
          ["prevHash", row.prevHash],
          ["actor", row.actor as string],
          ["action", row.action as string],
          ["target", row.target as string | null],
          ["outcome", outcome],
        ],
      },
    ],
    text: `${String(row.actor)} ${String(row.action)}${row.target ? ` ${String(row.target)}` : ""}: ${outcome}${detail}`,
  });
}

/** A signed checkpoint as a syslog message: a collector then holds each anchor, out of reach of the appliance's root. */
export function checkpointMessage(anchor: Checkpoint, h: SyslogHeader): SyslogMessage {
  const a = anchor as Partial<ChainAnchor> & Checkpoint;
  return syslogMessage(h, {
    severity: "info",
    time: new Date(a.at),
    msgId: "checkpoint",
    data: [
      {
        id: `anchor@${SD_ENTERPRISE}`,
        params: [
          ["chain", a.chain],
          ["id", a.lastId],
          ["hash", a.lastHash],
          ["seq", a.seq],
          ["reason", a.reason],
          ["key", a.key],
          ["signature", a.signature],
        ],
      },
    ],
    text: `checkpoint #${a.seq} of ${a.chain}: rows up to ${a.lastId} (${a.reason})`,
  });
}

/** A refused checkpoint (the chain was rewritten in the database), as an alert. */
export function rewriteMessage(chain: string, message: string, h: SyslogHeader): SyslogMessage {
  return syslogMessage(h, {
    severity: "alert",
    time: new Date(),
    msgId: "rewrite",
    data: [{ id: `anchor@${SD_ENTERPRISE}`, params: [["chain", chain]] }],
    text: message,
  });
}

/** Forwarding of one process's audit events and checkpoints; `close` flushes for a moment and stops. */
export interface AuditForwarding {
  forwarder: SyslogForwarder;
  /** Forward what the hash-chained logs on this connection pool append and anchor. */
  watch(sequelize: Sequelize): void;
  close(timeoutMs?: number): Promise<void>;
}

/** Syslog forwarding as `audit.syslog` configures it; undefined when it is off (the default). */
export function auditForwarding(config: PlumConfig, log: Logger, appName: string): AuditForwarding | undefined {
  const settings = config.audit.syslog;
  if (!settings) return undefined;
  const forwarder = new SyslogForwarder({ target: settings.target, log, queueLimit: settings.queue });
  const header: SyslogHeader = { facility: settings.facility, appName };
  const watched: Array<() => void> = [];
  return {
    forwarder,
    watch(sequelize) {
      const events = chainEvents(sequelize);
      const onAppend = (chain: string, row: ChainedRow<Record<string, unknown>>) => {
        if (chain === "audit_log") forwarder.send(formatRfc5424(auditEventMessage(row, header), forwarder.maxMessageBytes));
      };
      const onAnchor = (anchor: Checkpoint) => forwarder.send(formatRfc5424(checkpointMessage(anchor, header), forwarder.maxMessageBytes));
      const onRewrite = (chain: string, message: string) => forwarder.send(formatRfc5424(rewriteMessage(chain, message, header), forwarder.maxMessageBytes));
      events.on("append", onAppend).on("anchor", onAnchor).on("rewrite", onRewrite);
      watched.push(() => events.off("append", onAppend).off("anchor", onAnchor).off("rewrite", onRewrite));
    },
    async close(timeoutMs = 2000) {
      for (const unwatch of watched.splice(0)) unwatch();
      await forwarder.close(timeoutMs);
    },
  };
}
