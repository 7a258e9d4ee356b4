import { DrizzleQueryError } from "drizzle-orm/errors";

/**
 * Keeps a connection URL loggable: the password never leaves the process, whether in the
 * user-info (`user:pass@`) or as a `password` query parameter (libpq's form, which postgres.js
 * does not read as a password but sends to the server as a setting, and quotes when refused).
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    for (const name of [...parsed.searchParams.keys()]) {
      if (/pass/i.test(name)) parsed.searchParams.set(name, "***");
    }
    return parsed.toString();
  } catch {
    return "(unparseable URL)";
  }
}

export interface LoggableError {
  name: string;
  message: string;
  cause?: LoggableError | undefined;
}

/** Causes followed at most: a cycle of causes must not hang a log line. */
const CAUSE_DEPTH = 3;

/**
 * What logs and traces may say of an error: its name and message, and its cause's. Drizzle's
 * "Failed query" error lists the statement's parameters after the statement: a password hash, a
 * username, a pet's name. Only the statement stays, and its cause (the driver's error: why it
 * failed) is kept beside it.
 */
export function loggableError(err: Error, depth = 0): LoggableError {
  const message =
    err instanceof DrizzleQueryError ? `Failed query: ${err.query}` : String(err.message);
  const name = err instanceof DrizzleQueryError ? "DrizzleQueryError" : err.name;
  const cause =
    err.cause instanceof Error && depth < CAUSE_DEPTH
      ? loggableError(err.cause, depth + 1)
      : undefined;
  return cause ? { name, message, cause } : { name, message };
}

/** An error as a span records it (`recordException`): what a log line may say of it. */
export const exceptionOf = (err: unknown): LoggableError | string =>
  err instanceof Error ? loggableError(err) : String(err);

/**
 * An error's stack frames without its first lines: Bun's `stack` starts with the name and the
 * whole message, which for a failed query lists its parameters.
 */
export function stackFrames(err: unknown): string | undefined {
  if (!(err instanceof Error) || typeof err.stack !== "string") return undefined;
  return err.stack
    .split("\n")
    .filter((line) => /^\s+at /.test(line))
    .join("\n");
}
