/**
 * What both ceilings share: their environment, their postgres.js pool, and bearer tokens checked
 * as petbooks checks them: the token with src/auth/tokens.ts (which remembers verified tokens),
 * and its user looked up, with the statement captured from the users repository, at most every
 * 5 s per user.
 */
import type postgres from "postgres";
import { captureOne, type recordingDb, type Statement } from "../lib/capture.ts";
import { connect } from "../lib/database.ts";
import { createTokenIssuer, createUsersRepository } from "../lib/petbooks.ts";

export const env = (name: string, fallback?: string) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};

/**
 * The pool of DATABASE_POOL_SIZE (10) connections to DATABASE_URL, every one open before anything
 * is measured, and nothing else run on them: their PostgreSQL backends start where petbooks' do.
 * (Until 2026-12-05 each first allocated and freed 1 MB, so that its allocator kept its heap
 * between statements, on the belief that petbooks' relay did that to petbooks' backends. It does
 * not while there is nothing to relay: strace showed petbooks' backends growing and shrinking
 * their heap with `brk` about four times per `offset=50000` page and the ceiling's not at all,
 * PostgreSQL spending 26% more per request under petbooks; docs/performance-history.md.)
 */
export async function connectPool(): Promise<postgres.Sql> {
  const max = Number(env("DATABASE_POOL_SIZE", "10"));
  const sql = connect(env("DATABASE_URL"), max);
  await openConnections(sql, max);
  return sql;
}

/** Opens all `max` connections of the pool `sql`. */
async function openConnections(sql: postgres.Sql, max: number) {
  const connections = await Promise.all(Array.from({ length: max }, () => sql.reserve()));
  await Promise.all(connections.map((connection) => connection`select 1`));
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
