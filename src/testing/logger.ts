/** For tests: a logger that keeps every line it writes, parsed, for the test to assert on. */
import { createLogger, type Logger, type LogLevel } from "../logger.ts";

export function capturingLogger(level: LogLevel = "debug"): {
  logger: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger(level, (line) => lines.push(JSON.parse(line))) };
}
