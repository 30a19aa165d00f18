import { expect } from "chai";
import { ConfigError, loadConfig } from "../../lib/config.ts";
import { hostname } from "node:os";
import { formatRfc5424, octetCounted, parseSyslogTarget, syslogMessage, type SyslogMessage } from "../../lib/syslog.ts";

const base: SyslogMessage = {
  facility: "authpriv",
  severity: "notice",
  time: new Date("2026-12-02T01:02:03.456Z"),
  hostname: "plum-1.example.internal",
  appName: "plum-agent",
  procId: 4242,
  msgId: "audit",
  data: [
    {
      id: "audit@32473",
      params: [
        ["chain", "audit_log"],
        ["id", 42],
        ["hash", "ab12"],
        ["target", null],
      ],
    },
  ],
  text: "user:admin user.create user:u1: success",
};

describe("syslog: RFC 5424 messages and their framing", () => {
  it("writes PRI, VERSION, timestamp, hostname, app-name, procid, msgid, structured data and a BOM before the text", () => {
    expect(formatRfc5424(base)).to.equal(
      '<85>1 2026-12-02T01:02:03.456Z plum-1.example.internal plum-agent 4242 audit [audit@32473 chain="audit_log" id="42" hash="ab12"] \uFEFFuser:admin user.create user:u1: success',
    );
    expect(formatRfc5424({ ...base, facility: "local7", severity: "debug", data: [], text: "" })).to.equal(
      "<191>1 2026-12-02T01:02:03.456Z plum-1.example.internal plum-agent 4242 audit -",
    );
  });

  it('escapes ", \\ and ] in values, and keeps header fields to printable ASCII', () => {
    const m = formatRfc5424({ ...base, hostname: "", appName: "plum agent", data: [{ id: "x@32473", params: [["v", 'a"b\\c]d']] }], text: "line1\nline2" });
    expect(m).to.equal('<85>1 2026-12-02T01:02:03.456Z - plum_agent 4242 audit [x@32473 v="a\\"b\\\\c\\]d"] \uFEFFline1 line2');
  });

  it("cuts the text, never the header or the structured data, to the size asked (whole UTF-8 characters)", () => {
    const m = formatRfc5424({ ...base, text: "é".repeat(2000) }, 300);
    expect(Buffer.byteLength(m)).to.be.at.most(300);
    expect(Buffer.byteLength(m)).to.be.at.least(299);
    expect(m).to.match(/\[audit@32473 chain="audit_log" id="42" hash="ab12"\] \uFEFFé+$/);
  });

  it("fills one sender's header into each message: this host and this process unless named", () => {
    const { facility, appName, hostname: host, procId, ...rest } = base;
    expect(syslogMessage({ facility, appName, hostname: host, procId }, rest)).to.deep.equal(base);
    expect(syslogMessage({ facility, appName }, rest)).to.deep.equal({ ...base, hostname: hostname(), procId: process.pid });
  });

  it("frames a message for TCP with its length in bytes (RFC 6587 octet counting)", () => {
    expect(octetCounted("<85>1 é").toString()).to.equal("8 <85>1 é");
  });

  it("reads udp://, tcp:// and unix:// targets and explains the rest", () => {
    expect(parseSyslogTarget("udp://127.0.0.1:514")).to.deep.equal({ transport: "udp", host: "127.0.0.1", port: 514 });
    expect(parseSyslogTarget("tcp://[::1]:6514")).to.deep.equal({ transport: "tcp", host: "::1", port: 6514 });
    expect(parseSyslogTarget("tcp://collector.example.internal")).to.deep.equal({ transport: "tcp", host: "collector.example.internal", port: 514 });
    expect(parseSyslogTarget("unix:///dev/log")).to.deep.equal({ transport: "unix", path: "/dev/log" });
    expect(() => parseSyslogTarget("unix://dev/log")).to.throw('"unix://dev/log" names no socket: write unix:///dev/log (three slashes)');
    expect(() => parseSyslogTarget("http://x:1")).to.throw('"http://x:1" is neither udp://, tcp:// nor unix://');
    expect(() => parseSyslogTarget("127.0.0.1:514")).to.throw('"127.0.0.1:514" is not a URL: write udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH');
  });

  it("is off by default, and a bad audit.syslog.target is a configuration error that says what to write", () => {
    expect(loadConfig({ PLUM_HOME: "/nonexistent-plum-home" }).audit).to.deep.equal({ anchors: { everyRows: 100, everySeconds: 300 } });
    let error: ConfigError | undefined;
    try {
      loadConfig({ PLUM_HOME: "/nonexistent-plum-home", PLUM_AUDIT_SYSLOG: "syslog.example.internal:514" });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error?.problems).to.deep.equal([
      'audit.syslog.target (from PLUM_AUDIT_SYSLOG): "syslog.example.internal:514" is neither udp://, tcp:// nor unix://: must be the collector: udp://HOST:PORT, tcp://HOST:PORT (octet-counted frames, RFC 6587) or unix:///PATH of a stream socket, e.g. udp://127.0.0.1:514 (env PLUM_AUDIT_SYSLOG)',
    ]);
  });
});
