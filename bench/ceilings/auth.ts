/**
 * What both ceilings share: their environment, their postgres.js pool, and bearer tokens checked
 * as petbooks checks them: the token with src/auth/tokens.ts (which remembers verified tokens),
 * and its user looked up, with the statement captured from the users repository, at most every
 * 5 s per user.
 */
import postgres from "postgres";
import { captureOne, type recordingDb, type Statement } from "../lib/capture.ts";
import { createTokenIssuer, createUsersRepository } from "../lib/petbooks.ts";

export const env = (name: string, fallback?: string) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};

/** What a PostgreSQL backend allocates and frees once, to keep its heap (see connectPool). */
export const CONDITIONING = "select length(repeat('x', 1048576))";

/**
 * The pool of DATABASE_POOL_SIZE (10) connections to DATABASE_URL, every one open and its
 * PostgreSQL backend in the state petbooks' are in. A backend's allocator (glibc malloc) gives
 * its heap back after each statement until the backend has once freed a large block; from then
 * on it keeps it. petbooks' relay claims its outbox batches with a large statement on whichever
 * connection is free, so each of its connections soon has; a fresh one of the ceiling had not,
 * and paid two brk calls and the page faults of about 180 KB on every page with photo URLs
 * (strace; 1.5 to 2.5 times the CPU per statement). One statement that allocates and frees
 * 1 MB on each connection puts them in the same state before anything is measured.
 */
export async function connectPool(): Promise<postgres.Sql> {
  const max = Number(env("DATABASE_POOL_SIZE", "10"));
  const sql = postgres(env("DATABASE_URL"), { max, onnotice: () => {} });
  await conditionConnections(sql, max);
  return sql;
}

/** Opens all `max` connections of the pool `sql` and conditions their backends (connectPool). */
export async function conditionConnections(sql: postgres.Sql, max: number) {
  const connections = await Promise.all(Array.from({ length: max }, () => sql.reserve()));
  await Promise.all(connections.map((connection) => connection.unsafe(CONDITIONING)));
  for (const connection of connections) connection.release();
}

const USER_CACHE_MS = 5_000;

/** Runs a captured statement as petbooks runs it, answering its rows. */
export type RunStatement = (statement: Statement, params?: unknown[]) => Promise<unknown[]>;

export function bearerAuth(
  run: RunStatement,
  recorder: ReturnType<typeof recordingDb>,
  secret: string,
  ttlSeconds: number,
) {
  const tokens = createTokenIssuer(secret, ttlSeconds);
  const users = createUsersRepository(recorder.db);
  const findUser = captureOne(recorder, () => users.findById(crypto.randomUUID()));
  const knownUsers = new Map<string, number>();
  return async (authorization: string | null | undefined): Promise<boolean> => {
    const token = /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(authorization ?? "")?.[1];
    const userId = token ? await tokens.verify(token) : undefined;
    if (!userId) return false;
    if ((knownUsers.get(userId) ?? 0) > Date.now()) return true;
    if ((await run(await findUser, [userId])).length === 0) return false;
    knownUsers.set(userId, Date.now() + USER_CACHE_MS);
    return true;
  };
}
