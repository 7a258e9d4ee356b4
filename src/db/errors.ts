/**
 * What a database error means for the caller: the database is unreachable or overloaded for now
 * (answer 503 and retry later), or it refused us for good (wrong password, no such database),
 * which no retry can fix.
 */

import type { Logger } from "../logger.ts";

/** Node socket errors and postgres.js's own connection error codes. */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  // Given up after hearing nothing, with the server out of reach (db/client.ts, serverSilence).
  "ANSWER_TIMEOUT",
]);

/**
 * SQLSTATEs of a server that is going away or starting, that takes no writes for now, or that
 * cancelled a slow statement.
 */
const UNAVAILABLE_SQLSTATES = new Set([
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up or shutting down)
  "25006", // read_only_sql_transaction: a write reached a standby, or a database set read-only
  "57014", // query_canceled: statement_timeout (DATABASE_TIMEOUT_MS)
  "55P03", // lock_not_available
]);

/** Connection refusals that stay the same however often they are retried. */
const PERMANENT_SQLSTATES: Record<string, string> = {
  "28P01": "wrong password",
  "28000": "the role may not log in here (pg_hba.conf)",
  "3D000": "the database does not exist",
  "42501": "the role lacks a privilege it needs",
  "3F000": "the schema does not exist",
};

/**
 * object_not_in_prerequisite_state, when it ends the connection (FATAL): `database "…" is not
 * currently accepting connections` (ALTER DATABASE … ALLOW_CONNECTIONS false, for maintenance).
 * The same SQLSTATE on a statement (ERROR) is no outage.
 */
const NOT_ACCEPTING_CONNECTIONS = "55000";

/** The errors of a chain: Drizzle wraps the driver's error in its own, with it as `cause`. */
function chainOf(err: unknown): { code?: unknown; severity?: unknown }[] {
  const chain: { code?: unknown; severity?: unknown; cause?: unknown }[] = [];
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    chain.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return chain;
}

function codesOf(err: unknown): string[] {
  return chainOf(err).flatMap((e) => (typeof e.code === "string" ? [e.code] : []));
}

export function isDatabaseUnavailable(err: unknown): boolean {
  return chainOf(err).some(({ code, severity }) => {
    if (typeof code !== "string") return false;
    if (code === NOT_ACCEPTING_CONNECTIONS) return severity === "FATAL";
    return (
      UNREACHABLE_CODES.has(code) ||
      UNAVAILABLE_SQLSTATES.has(code) ||
      // connection_exception, and insufficient_resources (disk full, out of memory, of slots)
      code.startsWith("08") ||
      code.startsWith("53")
    );
  });
}

/** Why the server refused us for good, or undefined when a retry may help. */
export function permanentRefusal(err: unknown): string | undefined {
  for (const code of codesOf(err)) {
    const reason = PERMANENT_SQLSTATES[code];
    if (reason) return `${reason} (${code})`;
  }
  return undefined;
}

/**
 * Why the server turned a connection away for good (FATAL with a permanent SQLSTATE: a wrong
 * password, a database dropped or renamed under us, a role no longer allowed in), or undefined.
 * At startup that ends the process (db/client.ts); to a running server it is an outage like any
 * other for its callers (503), but one that only an operator can end.
 */
export function refusedConnection(err: unknown): string | undefined {
  const fatal = chainOf(err).find(
    ({ code, severity }) =>
      severity === "FATAL" && typeof code === "string" && code in PERMANENT_SQLSTATES,
  );
  return fatal ? permanentRefusal(fatal) : undefined;
}

/**
 * The log line of a request that met a database outage: a warning while it may pass by itself,
 * an error naming the reason when only an operator can end it (refusedConnection).
 */
export function logDatabaseOutage(
  logger: Pick<Logger, "warn" | "error">,
  err: unknown,
  fields: Record<string, unknown>,
): void {
  const reason = refusedConnection(err);
  if (reason) logger.error("database refused the connection", { ...fields, reason, err });
  else logger.warn("database unavailable", { ...fields, err });
}

/** The database cannot serve this request now, for whatever reason: the caller gets 503. */
export function isDatabaseOutage(err: unknown): boolean {
  return isDatabaseUnavailable(err) || refusedConnection(err) !== undefined;
}

/** A table the statement names does not exist (undefined_table): a database never migrated. */
export function isMissingTable(err: unknown): boolean {
  return codesOf(err).includes("42P01");
}

/** A row referenced another that is not there (foreign_key_violation), e.g. a deleted pet. */
export function isForeignKeyViolation(err: unknown): boolean {
  return codesOf(err).includes("23503");
}

/**
 * Our own wait for the database ran out (a ping that got no answer in DATABASE_TIMEOUT_MS): the
 * database counts as unreachable, like a socket timeout.
 */
export class DatabaseTimeoutError extends Error {
  override name = "DatabaseTimeoutError";
  readonly code = "ETIMEDOUT";
}

/** `work`, or a DatabaseTimeoutError once `ms` have passed without its answer. */
export function withDatabaseTimeout<T>(work: PromiseLike<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const answer = Promise.resolve(work);
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DatabaseTimeoutError(`${what}: no answer in ${ms} ms`)),
      ms,
    );
  });
  // A late failure of the abandoned work is not an unhandled rejection.
  answer.catch(() => {});
  return Promise.race([answer, expired]).finally(() => clearTimeout(timer));
}
