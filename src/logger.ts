/** Structured JSON logs, one object per line on stderr (stdout stays free for command output). */
import { loggableError } from "./redact.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

type Fields = Record<string, unknown>;
export type LogSink = (line: string) => void;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(bindings: Fields): Logger;
  /** Whether a line of `level` would be written: spares building the fields of one that is not. */
  enabled(level: LogLevel): boolean;
}

const stderrSink: LogSink = (line) => {
  process.stderr.write(line);
};

function serializeError(err: unknown): unknown {
  return err instanceof Error ? loggableError(err) : err;
}

/**
 * Fields every log line gets while a trace is active (`trace_id`, `span_id`): set by tracing when
 * it is on (observability/tracing.ts); unset, nothing is looked up.
 */
let correlation: (() => Fields | undefined) | undefined;

export function correlateLogs(fields: (() => Fields | undefined) | undefined): void {
  correlation = fields;
}

export function createLogger(
  level: LogLevel = "info",
  sink: LogSink = stderrSink,
  bindings: Fields = {},
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const enabled = (lvl: LogLevel) => LOG_LEVELS.indexOf(lvl) >= threshold;
  const write = (lvl: LogLevel, msg: string, fields?: Fields) => {
    if (!enabled(lvl)) return;
    const entry: Fields = { time: new Date().toISOString(), level: lvl, msg, ...bindings };
    if (correlation) Object.assign(entry, correlation());
    if (fields) {
      for (const [key, value] of Object.entries(fields)) {
        entry[key] = key === "err" ? serializeError(value) : value;
      }
    }
    sink(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (more) => createLogger(level, sink, { ...bindings, ...more }),
    enabled,
  };
}

export const silentLogger: Logger = createLogger("error", () => {});
