/** Registration, password login and the resolution of a bearer token to its user. */
import { ConflictError, UnauthorizedError, ValidationError } from "../errors.ts";
import { type Registration, USERNAME_PATTERN, type User } from "./auth.model.ts";
import {
  argon2idHasher,
  createHashQueue,
  defaultHashQueueOptions,
  type HashQueue,
  type PasswordHasher,
} from "./hash-queue.ts";
import { passwordProblem } from "./password-policy.ts";
import { type AuthLimits, createAuthLimits, createMemoryCounterStore } from "./rate-limit.ts";
import type { TokenIssuer } from "./tokens.ts";
import type { UserRow, UsersRepository } from "./users.repository.ts";

export const BEARER_TOKEN_REQUIRED = "A bearer token is required (Authorization: Bearer <token>).";
export const WRONG_CREDENTIALS = "Wrong username or password.";

const USERNAME = new RegExp(USERNAME_PATTERN);
const canNameUser = (username: string) => USERNAME.test(username);
export const USERNAME_TAKEN = "That username is taken.";

export interface AuthServiceDeps {
  users: UsersRepository;
  tokens: TokenIssuer;
  /**
   * How long a token's user is remembered before the database is asked again: a deleted user's
   * tokens stop working at once in the process that deleted it, and within this in the others.
   */
  userCacheMs?: number;
  /** Hashes and checks passwords; by default argon2id. */
  passwords?: PasswordHasher;
  /** Takes turns at hashing, a few at a time (hash-queue.ts); by default one per core. */
  hashQueue?: HashQueue;
  /** Attempts and failures allowed before hashing; by default in memory, with the defaults. */
  limits?: AuthLimits;
  /** Milliseconds since the epoch; tests pass a clock of their own. */
  now?: () => number;
}

/** Who is asking, as far as the transport knows. */
export interface AuthClient {
  /** The client's address (client-address.ts); undefined for in-process calls. */
  address?: string | undefined;
}

const toUser = (row: UserRow): User => ({
  id: row.id,
  username: row.username,
  created_at: row.createdAt,
});

export function createAuthService({
  users,
  tokens,
  userCacheMs = 5_000,
  passwords = argon2idHasher,
  hashQueue = createHashQueue(defaultHashQueueOptions()),
  limits = createAuthLimits(createMemoryCounterStore()),
  now = Date.now,
}: AuthServiceDeps) {
  // Verified against when the user does not exist, so both failures cost one password check.
  // Made on first use (a process that never logs anyone in never pays for it), by the same
  // hasher, within the turn of the login that needs it; a failure is not remembered.
  let dummy: Promise<string> | undefined;
  const dummyHash = () => {
    dummy ??= passwords.hash(crypto.randomUUID()).catch((err) => {
      dummy = undefined;
      throw err;
    });
    return dummy;
  };
  const knownUsers = new Map<string, { user: User; until: number }>();
  /**
   * Deletions so far: a user read before a deletion that ended while the read was out is not
   * remembered, or a deleted user's tokens would go on working here for `userCacheMs`.
   */
  let deletions = 0;

  const loadUser = async (id: string): Promise<User | undefined> => {
    const cached = knownUsers.get(id);
    if (cached && cached.until > now()) return cached.user;
    const deletionsBefore = deletions;
    const row = await users.findById(id);
    if (!row) {
      knownUsers.delete(id);
      return undefined;
    }
    const user = toUser(row);
    if (deletions !== deletionsBefore) return user;
    if (knownUsers.size > 10_000) knownUsers.clear();
    knownUsers.set(id, { user, until: now() + userCacheMs });
    return user;
  };

  return {
    /** Limited per client address before the password is hashed (rate-limit.ts). */
    async register(input: Registration, client: AuthClient = {}): Promise<User> {
      // The HTTP schema checks this first; other callers (seed) meet the same rule here.
      const problem = passwordProblem(input.password);
      if (problem) {
        throw new ValidationError("Invalid body.", [{ path: "/password", message: problem }]);
      }
      await limits.admit({ address: client.address });
      const passwordHash = await hashQueue.run(() => passwords.hash(input.password));
      const row = await users.insert({
        id: Bun.randomUUIDv7(),
        username: input.username,
        passwordHash,
      });
      if (!row) throw new ConflictError(USERNAME_TAKEN);
      return toUser(row);
    },

    /**
     * Limited per client address and per username before anything else (rate-limit.ts). An
     * unknown user costs the same one password check as a wrong password, against a dummy hash,
     * so neither the answer nor its timing tells which usernames exist.
     */
    async login(username: string, password: string, client: AuthClient = {}) {
      const admission = await limits.admit({ address: client.address, username });
      let found: Awaited<ReturnType<UsersRepository["findCredentials"]>>;
      let valid: boolean;
      try {
        // The user is looked up in the turn too: a login refused for want of one costs nothing.
        ({ found, valid } = await hashQueue.run(async () => {
          // Only a name registration accepts can name a user. The others are never looked up:
          // PostgreSQL's lower() folds some non-ASCII letters to ASCII ones ("İ" to "i"), which
          // would let one user's name be spelled in ways the per-username limit counts apart.
          const row = canNameUser(username) ? await users.findCredentials(username) : undefined;
          const hash = row?.passwordHash ?? (await dummyHash());
          return { found: row, valid: await passwords.verify(password, hash) };
        }));
      } catch (err) {
        // The password was never checked (too busy, no database): no failure of this username.
        await admission.withdrawn();
        throw err;
      }
      if (!found || !valid) {
        throw new UnauthorizedError(WRONG_CREDENTIALS, "bearer");
      }
      await admission.succeeded();
      return tokens.issue(found.id);
    },

    /**
     * The user behind an `Authorization` header value, or an UnauthorizedError that says whether
     * the token was missing or not accepted.
     */
    async authenticate(authorization: string | null): Promise<User> {
      const match = authorization ? /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(authorization) : null;
      if (!match?.[1]) {
        throw new UnauthorizedError(BEARER_TOKEN_REQUIRED, "bearer");
      }
      const userId = await tokens.verify(match[1]);
      const user = userId ? await loadUser(userId) : undefined;
      if (!user) throw new UnauthorizedError("The token is invalid or expired.", "invalid-bearer");
      return user;
    },

    async deleteUser(id: string): Promise<void> {
      knownUsers.delete(id);
      try {
        await users.delete(id);
      } finally {
        deletions += 1;
        knownUsers.delete(id);
      }
    },
  };
}

export type AuthService = ReturnType<typeof createAuthService>;
