import { expect } from "chai";
import dgram from "node:dgram";
import net from "node:net";
import { hostname } from "node:os";
import { Writable } from "node:stream";
import { pino } from "pino";
import type { Agent } from "../../appliance/agent.ts";
import { auditForwarding } from "../../appliance/audit/audit-forwarding.ts";
import { AuditLog, type AuditRow } from "../../appliance/audit/audit-log.ts";
import { loadConfig, type PlumConfig } from "../../lib/config.ts";
import { clientConfig } from "../../lib/db/database.ts";
import { openSequelize } from "../../lib/db/sequelize.ts";
import { waitFor } from "../../lib/wait.ts";
import { removeHome, tempHome } from "../support/agent-process.ts";
import { freshDatabases } from "../support/databases.ts";
import { startInProcessAgent } from "../support/in-process-agent.ts";

/** An RFC 5424 message taken apart by the grammar of §6, independently of the code that writes it. */
interface Parsed {
  pri: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  data: Record<string, Record<string, string>>;
  msg: string;
}

function parse5424(line: string): Parsed {
  const head = /^<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(line);
  if (!head) throw new Error(`not RFC 5424: ${line}`);
  let i = head[0].length;
  const data: Parsed["data"] = {};
  if (line[i] === "-") i++;
  else
    while (line[i] === "[") {
      const id = /^\[([^ \]=""]+)/.exec(line.slice(i))![1];
      i += 1 + id.length;
      const params: Record<string, string> = {};
      while (line[i] === " ") {
        const name = /^ ([^ \]=""]+)="/.exec(line.slice(i))![1];
        i += name.length + 3;
        let value = "";
        while (line[i] !== '"') {
          if (line[i] === "\\" && ['"', "\\", "]"].includes(line[i + 1])) i++;
          value += line[i++];
        }
        i++;
        params[name] = value;
      }
      if (line[i] !== "]") throw new Error(`unterminated structured data at ${i}: ${line}`);
      i++;
      data[id] = params;
    }
  const rest = line.slice(i);
  return {
    pri: Number(head[1]),
    version: Number(head[2]),
    timestamp: head[3],
    hostname: head[4],
    appName: head[5],
    procId: head[6],
    msgId: head[7],
    data,
    msg: rest.startsWith(" \uFEFF") ? rest.slice(2) : rest.replace(/^ /, ""),
  };
}

/** A collector on loopback: UDP datagrams, or TCP with octet-counted frames (RFC 6587). */
async function collector(kind: "udp" | "tcp"): Promise<{ port: number; messages: Parsed[]; close(): Promise<void> }> {
  const messages: Parsed[] = [];
  if (kind === "udp") {
    const socket = dgram.createSocket("udp4");
    socket.on("message", (m) => messages.push(parse5424(m.toString("utf8"))));
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    return { port: socket.address().port, messages, close: () => new Promise((resolve) => socket.close(() => resolve())) };
  }
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    let buf = Buffer.alloc(0);
    s.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const space = buf.indexOf(0x20);
        if (space < 0) break;
        const length = Number(buf.subarray(0, space).toString());
        if (!Number.isInteger(length) || length <= 0) throw new Error(`bad octet count: ${buf.subarray(0, space).toString()}`);
        if (buf.length < space + 1 + length) break;
        messages.push(parse5424(buf.subarray(space + 1, space + 1 + length).toString("utf8")));
        buf = buf.subarray(space + 1 + length);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    messages,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function forwardTo(target: string) {
  return (config: PlumConfig) =>
    Object.assign(config, { audit: { ...config.audit, anchors: { everyRows: 3, everySeconds: 3600 }, syslog: { target, facility: "authpriv", queue: 1000 } } });
}

for (const kind of ["udp", "tcp"] as const) {
  describe(`security: audit events and checkpoints forwarded to syslog over ${kind.toUpperCase()}`, function () {
    let agent: Agent;
    let stop: () => Promise<void>;
    let sink: Awaited<ReturnType<typeof collector>>;

    before(async () => {
      sink = await collector(kind);
      ({ agent, stop } = await startInProcessAgent(forwardTo(`${kind}://127.0.0.1:${sink.port}`)));
    });
    after(async () => {
      await stop();
      await sink.close();
    });

    it("sends each audit event as RFC 5424 with its chain id and hash, and each checkpoint", async () => {
      const rows: AuditRow[] = [];
      for (let i = 1; i <= 4; i++)
        rows.push(
          await agent.audit.append({
            actor: "user:admin",
            action: "user.create",
            target: `user:s${i}`,
            outcome: i === 4 ? "denied" : "success",
            detail: { n: i },
          }),
        );
      const denied = rows[3];
      const event = await waitFor(
        `audit row ${denied.id} at the collector`,
        async () => sink.messages.find((m) => m.data["audit@32473"]?.id === String(denied.id)),
        {
          timeoutMs: 15_000,
        },
      );
      expect(event.pri, "authpriv (10) · warning (4)").to.equal(10 * 8 + 4);
      expect(event.version).to.equal(1);
      expect(event.timestamp).to.equal(denied.at.toISOString());
      expect(event.hostname).to.equal(hostname());
      expect(event.appName).to.equal("plum-agent");
      expect(event.procId).to.equal(String(process.pid));
      expect(event.msgId).to.equal("audit");
      expect(event.data["audit@32473"]).to.deep.equal({
        chain: "audit_log",
        id: String(denied.id),
        hash: denied.hash,
        prevHash: denied.prevHash,
        actor: "user:admin",
        action: "user.create",
        target: "user:s4",
        outcome: "denied",
      });
      expect(event.msg).to.equal('user:admin user.create user:s4: denied {"n":4}');
      const first = sink.messages.find((m) => m.data["audit@32473"]?.id === String(rows[0].id))!;
      expect(first.pri, "authpriv (10) · notice (5)").to.equal(10 * 8 + 5);

      const checkpoint = await waitFor(
        "a checkpoint of the audit log at the collector",
        async () => sink.messages.find((m) => m.msgId === "checkpoint" && m.data["anchor@32473"]?.chain === "audit_log"),
        { timeoutMs: 15_000 },
      );
      expect(checkpoint.pri, "authpriv (10) · info (6)").to.equal(10 * 8 + 6);
      const anchored = checkpoint.data["anchor@32473"];
      expect(anchored).to.include.keys("chain", "id", "hash", "seq", "reason", "key", "signature");
      const [row] = await agent.audit.list({ beforeId: Number(anchored.id) + 1, limit: 1 });
      expect(anchored.hash, "the checkpoint names the hash of the row it covers").to.equal(row.hash);
    });
  });
}

describe("security: a dead syslog collector never fails or blocks an audit append", function () {
  it("queues up to the limit, counts what it drops, warns, and every append lands", async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));

    const dbs = await freshDatabases({ migrated: true });
    const home = tempHome();
    const sequelize = openSequelize(clientConfig(dbs.server, dbs.ops));
    const warnings: Array<Record<string, unknown>> = [];
    const log = pino(
      { level: "warn" },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          warnings.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    );
    try {
      const config = loadConfig({ PLUM_HOME: home, PLUM_AUDIT_SYSLOG: `tcp://127.0.0.1:${port}` });
      config.audit.syslog!.queue = 10;
      const forwarding = auditForwarding(config, log, "plum-agent")!;
      forwarding.watch(sequelize);
      const audit = new AuditLog(sequelize);
      for (let i = 1; i <= 50; i++) await audit.append({ actor: "agent", action: "load", detail: { i } });
      expect(await audit.verify()).to.include({ ok: true, checked: 50 });
      const { sent, dropped, queued } = forwarding.forwarder.stats();
      expect(sent).to.equal(0);
      expect(queued).to.be.at.most(10);
      expect(dropped + queued).to.equal(50);
      await forwarding.close(200);
      expect(forwarding.forwarder.stats()).to.deep.equal({ sent: 0, dropped: 50, queued: 0 });
      const warning = warnings.find(
        (w) => w.msg === "syslog forwarding is failing: audit events wait in a bounded queue and the oldest are dropped (counted); appends go on",
      );
      expect(warning, JSON.stringify(warnings)).to.include({ target: `tcp://127.0.0.1:${port}` });
    } finally {
      await sequelize.close();
      await dbs.drop();
      removeHome(home);
    }
  });
});
