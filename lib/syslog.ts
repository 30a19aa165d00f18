import dgram from "node:dgram";
import net from "node:net";
import { hostname } from "node:os";
import type { Logger } from "./logger.ts";

/** RFC 5424 facility codes by the names syslog daemons use (13 is "log audit"). */
export const FACILITIES = {
  kern: 0,
  user: 1,
  daemon: 3,
  auth: 4,
  syslog: 5,
  authpriv: 10,
  audit: 13,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
} as const;
export type FacilityName = keyof typeof FACILITIES;

export const SEVERITIES = { emergency: 0, alert: 1, critical: 2, error: 3, warning: 4, notice: 5, info: 6, debug: 7 } as const;
export type SeverityName = keyof typeof SEVERITIES;

export interface StructuredElement {
  /** "name@PEN" for ids of our own (RFC 5424 §7.2.2). */
  id: string;
  params: Array<[name: string, value: string | number | null | undefined]>;
}

export interface SyslogMessage {
  facility: FacilityName;
  severity: SeverityName;
  time: Date;
  hostname: string;
  appName: string;
  procId: string | number;
  msgId: string;
  data: StructuredElement[];
  text: string;
}

/** What every message of one sender carries: facility, app-name and, unless given, this host and this process. */
export interface SyslogHeader {
  facility: FacilityName;
  appName: string;
  hostname?: string;
  procId?: string | number;
}

/** A message of `header`'s sender: the one place the header fields are filled in. */
export function syslogMessage(header: SyslogHeader, m: Pick<SyslogMessage, "severity" | "time" | "msgId" | "data" | "text">): SyslogMessage {
  return { facility: header.facility, hostname: header.hostname ?? hostname(), appName: header.appName, procId: header.procId ?? process.pid, ...m };
}

/** The private enterprise number RFC 5612 reserves for documentation and examples: our SD-IDs are name@32473. */
export const SD_ENTERPRISE = 32473;

const BOM = "\uFEFF";

/** A header field: printable US-ASCII only (%d33-126), at most `max` characters, "-" when empty. */
function headerField(value: string, max: number): string {
  const printable = value.replace(/[^\x21-\x7e]/g, "_").slice(0, max);
  return printable === "" ? "-" : printable;
}

/** An SD-NAME: printable US-ASCII but `=`, space, `]` and `"`, at most 32 characters. */
function sdName(name: string): string {
  const clean = name.replace(/[^\x21-\x7e]|[= \]"]/g, "_").slice(0, 32);
  if (clean === "") throw new Error("a structured-data name cannot be empty");
  return clean;
}

/** A PARAM-VALUE: UTF-8, with `"`, `\` and `]` escaped by a backslash (§6.3.3). */
function sdValue(value: string): string {
  return value.replace(/[\\"\]]/g, (c) => `\\${c}`);
}

/** Cut a string to at most `bytes` UTF-8 bytes without splitting a character. */
function cutToBytes(s: string, bytes: number): string {
  if (Buffer.byteLength(s) <= bytes) return s;
  let out = Buffer.from(s).subarray(0, Math.max(0, bytes)).toString("utf8");
  while (out.endsWith("\uFFFD") || Buffer.byteLength(out) > bytes) out = out.slice(0, -1);
  return out;
}

/**
 * One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG`, at most `maxBytes`
 * (the text is cut, never the header or the structured data; 2048 is what RFC 5426 asks UDP receivers to take).
 */
export function formatRfc5424(m: SyslogMessage, maxBytes = 2048): string {
  const pri = FACILITIES[m.facility] * 8 + SEVERITIES[m.severity];
  const sd = m.data.length
    ? m.data
        .map(
          (e) =>
            `[${sdName(e.id)}${e.params
              .filter(([, v]) => v !== null && v !== undefined)
              .map(([k, v]) => ` ${sdName(k)}="${sdValue(String(v))}"`)
              .join("")}]`,
        )
        .join("")
    : "-";
  const head = `<${pri}>1 ${m.time.toISOString()} ${headerField(m.hostname, 255)} ${headerField(m.appName, 48)} ${headerField(String(m.procId), 128)} ${headerField(m.msgId, 32)} ${sd}`;
  if (m.text === "") return head;
  const room = maxBytes - Buffer.byteLength(head) - 1 - Buffer.byteLength(BOM);
  return `${head} ${BOM}${cutToBytes(m.text.replace(/[\r\n]+/g, " "), room)}`;
}

/** RFC 6587 octet counting: `LENGTH SP MESSAGE`, the length in bytes. */
export function octetCounted(message: string): Buffer {
  const body = Buffer.from(message);
  return Buffer.concat([Buffer.from(`${body.length} `), body]);
}

export type SyslogTarget = { transport: "udp" | "tcp"; host: string; port: number } | { transport: "unix"; path: string };

/** `udp://host:port`, `tcp://host:port` (port 514 when left out) or `unix:///path/to/socket`. */
export function parseSyslogTarget(target: string): SyslogTarget {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new Error(`"${target}" is not a URL: write udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH`);
  }
  const scheme = url.protocol.replace(/:$/, "");
  if (scheme === "unix") {
    if (!url.pathname || url.pathname === "/" || url.host) throw new Error(`"${target}" names no socket: write unix:///dev/log (three slashes)`);
    return { transport: "unix", path: decodeURIComponent(url.pathname) };
  }
  if (scheme !== "udp" && scheme !== "tcp") throw new Error(`"${target}" is neither udp://, tcp:// nor unix://`);
  if (!url.hostname) throw new Error(`"${target}" names no host`);
  if (url.pathname && url.pathname !== "/") throw new Error(`"${target}" has a path; give only host and port`);
  return { transport: scheme, host: url.hostname.replace(/^\[|\]$/g, ""), port: url.port ? Number(url.port) : 514 };
}

export interface ForwarderStats {
  sent: number;
  dropped: number;
  queued: number;
}

/**
 * Sends syslog messages to one collector without ever making the sender wait or fail: `send` only queues.
 * UDP: one datagram each. TCP: octet-counted frames (RFC 6587) on one connection, reconnected with a growing
 * pause. A Unix stream socket: one message per line. At most `queueLimit` messages wait; beyond that the oldest
 * is dropped and counted, and a warning (at most one a minute) says how many.
 */
export class SyslogForwarder {
  private readonly target: SyslogTarget;
  private readonly queue: Buffer[] = [];
  private readonly counts = { sent: 0, dropped: 0 };
  private udp?: dgram.Socket;
  private udpInFlight = 0;
  private stream?: net.Socket;
  private connected = false;
  private retry?: NodeJS.Timeout;
  private pauseMs = 500;
  private closed = false;
  private lastWarning = 0;
  private readonly settled = new Set<() => void>();

  constructor(private readonly opts: { target: string; log: Logger; queueLimit?: number }) {
    this.target = parseSyslogTarget(opts.target);
  }

  /** The largest message a transport carries here. */
  get maxMessageBytes(): number {
    return this.target.transport === "udp" ? 2048 : 8192;
  }

  stats(): ForwarderStats {
    return { ...this.counts, queued: this.queue.length + this.udpInFlight };
  }

  send(message: string): void {
    if (this.closed) return;
    const frame =
      this.target.transport === "tcp" ? octetCounted(message) : this.target.transport === "unix" ? Buffer.from(message + "\n") : Buffer.from(message);
    const limit = this.opts.queueLimit ?? 1000;
    if (this.target.transport === "udp") {
      if (this.udpInFlight >= limit) return this.drop("the UDP socket is not keeping up");
      this.sendDatagram(frame, this.target);
      return;
    }
    this.queue.push(frame);
    while (this.queue.length > limit) {
      this.queue.shift();
      this.drop("the collector is not reachable");
    }
    this.pump();
  }

  /** Flush what is queued (up to `timeoutMs`), then close; what is still queued then is counted as dropped. */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.settled.delete(check);
        resolve();
      };
      const check = () => {
        if (this.queue.length === 0 && this.udpInFlight === 0) done();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.settled.add(check);
      check();
    });
    this.closed = true;
    this.counts.dropped += this.queue.splice(0).length;
    this.udp?.close();
    this.stream?.end();
    this.stream?.destroy();
  }

  private sendDatagram(frame: Buffer, target: { host: string; port: number }): void {
    this.udp ??= dgram.createSocket(net.isIPv6(target.host) ? "udp6" : "udp4").on("error", (err) => this.warn(err.message));
    this.udp.unref();
    this.udpInFlight++;
    this.udp.send(frame, target.port, target.host, (err) => {
      this.udpInFlight--;
      if (err) this.drop(err.message);
      else this.counts.sent++;
      this.notify();
    });
  }

  private pump(): void {
    if (this.closed) return;
    if (!this.stream) return this.connect();
    if (!this.connected) return;
    while (this.queue.length && this.stream.writableLength < 64 * 1024) {
      this.stream.write(this.queue.shift()!);
      this.counts.sent++;
    }
    this.notify();
  }

  private connect(): void {
    if (this.retry || this.target.transport === "udp") return;
    const t = this.target;
    const socket = t.transport === "unix" ? net.connect({ path: t.path }) : net.connect({ host: t.host, port: t.port });
    this.stream = socket;
    socket.unref();
    socket.setNoDelay?.(true);
    socket.on("connect", () => {
      this.connected = true;
      this.pauseMs = 500;
      this.pump();
    });
    socket.on("drain", () => this.pump());
    socket.on("error", (err: NodeJS.ErrnoException) =>
      this.warn(
        err.code === "EPROTOTYPE"
          ? `${this.opts.target} is a datagram socket, which Node.js cannot write to: point audit.syslog.target at the collector's UDP or TCP port (rsyslog imudp/imtcp), or a stream socket`
          : err.message,
      ),
    );
    socket.on("close", () => {
      this.stream = undefined;
      this.connected = false;
      if (this.closed) return;
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (this.queue.length) this.pump();
      }, this.pauseMs);
      this.retry.unref();
      this.pauseMs = Math.min(this.pauseMs * 2, 30_000);
    });
  }

  private drop(why: string): void {
    this.counts.dropped++;
    this.warn(why);
  }

  private warn(why: string): void {
    const now = Date.now();
    if (now - this.lastWarning < 60_000) return;
    this.lastWarning = now;
    this.opts.log.warn(
      { target: this.opts.target, error: why, dropped: this.counts.dropped, queued: this.queue.length },
      "syslog forwarding is failing: audit events wait in a bounded queue and the oldest are dropped (counted); appends go on",
    );
  }

  private notify(): void {
    for (const check of [...this.settled]) check();
  }
}
