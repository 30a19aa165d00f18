import { mkdirSync } from "node:fs";
import path from "node:path";
import { pino, type Logger } from "pino";

export type { Logger };

/** JSON logs to stdout and, when a directory is given, to LOG_DIR/NAME.log as well. */
export function createLogger(name: string, opts: { level?: string; logDir?: string } = {}): Logger {
  const level = opts.level ?? process.env.PLUM_LOG_LEVEL ?? "info";
  const base = { name };
  const redact = { paths: ["password", "*.password", "req.headers.cookie", "req.headers.authorization", 'res.headers["set-cookie"]'], censor: "[redacted]" };
  if (!opts.logDir) return pino({ level, base, redact });
  mkdirSync(opts.logDir, { recursive: true });
  const streams = [
    { level: level as pino.Level, stream: pino.destination({ dest: 1, sync: false }) },
    { level: level as pino.Level, stream: pino.destination({ dest: path.join(opts.logDir, `${name}.log`), mkdir: true, sync: false }) },
  ];
  return pino({ level, base, redact }, pino.multistream(streams));
}
