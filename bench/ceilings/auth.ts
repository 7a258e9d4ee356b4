/**
 * What both ceilings share: their environment, their postgres.js pool, and bearer tokens checked
 * as petbooks checks them: the token with src/auth/tokens.ts (which remembers verified tokens),
 * and its user looked up, with the statement captured from the users repository, at most every
 * 5 s per user.
 */
import postgres from "postgres";
import { captureOne, type recordingDb, replay } from "../lib/capture.ts";
import { createTokenIssuer, createUsersRepository } from "../lib/petbooks.ts";

export const env = (name: string, fallback?: string) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};

/** The pool of DATABASE_POOL_SIZE (10) connections to DATABASE_URL. */
export const connectPool = () =>
  postgres(env("DATABASE_URL"), {
    max: Number(env("DATABASE_POOL_SIZE", "10")),
    onnotice: () => {},
  });

const USER_CACHE_MS = 5_000;

export function bearerAuth(
  sql: postgres.Sql,
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
    if ((await replay(sql, await findUser, [userId])).length === 0) return false;
    knownUsers.set(userId, Date.now() + USER_CACHE_MS);
    return true;
  };
}
